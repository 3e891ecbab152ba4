// Shared helpers for the autional JavaScript test scripts.
// No dependencies beyond Node's standard library.

import assert from 'node:assert/strict';

/** Read a required environment variable or exit with a clear message. */
export function requireEnv(names) {
  const out = {};
  const missing = [];
  for (const name of names) {
    const value = process.env[name];
    if (value === undefined || value === '') missing.push(name);
    else out[name] = value;
  }
  if (missing.length > 0) {
    console.error(`FAIL: missing required environment variable(s): ${missing.join(', ')}`);
    process.exit(2);
  }
  return out;
}

/** Normalise an issuer string: no trailing slash. */
export function normaliseIssuer(issuer) {
  return issuer.replace(/\/+$/, '');
}

/**
 * Step runner: prints one line per step ("ok N - name: detail") and, on the first
 * failure, a clear "FAIL" message and exit code 1.
 */
export function createRunner(scriptName) {
  let n = 0;
  const timeoutMs = Number(process.env.JS_TEST_TIMEOUT_MS || 120_000);
  const watchdog = setTimeout(() => {
    console.error(`FAIL ${scriptName}: overall timeout of ${timeoutMs} ms exceeded (step ${n})`);
    process.exit(1);
  }, timeoutMs);
  watchdog.unref();
  process.on('unhandledRejection', (err) => {
    console.error(`FAIL ${scriptName}: unhandled rejection during step ${n}: ${describeError(err)}`);
    process.exit(1);
  });

  async function step(name, fn) {
    n += 1;
    let detail;
    try {
      detail = await fn();
    } catch (err) {
      const e = new Error(`step ${n} (${name}) failed: ${describeError(err)}`);
      e.stepFailure = true;
      e.original = err;
      throw e;
    }
    const text = detail ? String(detail) : '';
    const shown = text.length > 240 && !process.env.JS_TEST_VERBOSE ? `${text.slice(0, 240)}…` : text;
    console.log(`ok ${n} - ${name}${shown ? `: ${shown}` : ''}`);
    return detail;
  }

  async function main(fn) {
    try {
      await fn(step);
      console.log(`PASS ${scriptName}: ${n} steps`);
      process.exitCode = 0;
    } catch (err) {
      console.error(`FAIL ${scriptName}: ${err.stepFailure ? err.message : describeError(err)}`);
      const original = err.original || err;
      if (process.env.JS_TEST_VERBOSE && original && original.stack) console.error(original.stack);
      process.exitCode = 1;
    } finally {
      clearTimeout(watchdog);
    }
  }

  return { step, main };
}

/** Human-readable description of an error, including OAuth error bodies. */
export function describeError(err) {
  if (!err || typeof err !== 'object') return String(err);
  const parts = [err.message || String(err)];
  if (err.code && err.code !== 'ERR_ASSERTION' && !parts[0].includes(err.code)) parts.push(`code=${err.code}`);
  if (err.error) parts.push(`error=${err.error}`);
  if (err.error_description) parts.push(`error_description=${err.error_description}`);
  if (err.status) parts.push(`http_status=${err.status}`);
  if (err.cause && typeof err.cause === 'object' && !(err.cause instanceof Error)) {
    try {
      parts.push(`cause=${JSON.stringify(err.cause)}`);
    } catch {
      /* ignore */
    }
  } else if (err.cause instanceof Error) {
    parts.push(`cause=${err.cause.message}`);
  }
  return parts.join('; ');
}

/**
 * Minimal cookie jar: name -> value, fed from Set-Cookie response headers and
 * serialised into a Cookie request header. Single-host use only (the issuer).
 * Also records the raw Set-Cookie lines so attributes can be inspected.
 */
export class CookieJar {
  constructor() {
    this.values = new Map();
    this.raw = new Map();
  }

  update(response) {
    const lines = typeof response.headers.getSetCookie === 'function' ? response.headers.getSetCookie() : [];
    for (const line of lines) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const attrMap = new Map(
        attrs.map((a) => {
          const i = a.indexOf('=');
          return i < 0 ? [a.trim().toLowerCase(), ''] : [a.slice(0, i).trim().toLowerCase(), a.slice(i + 1).trim()];
        }),
      );
      const maxAge = attrMap.get('max-age');
      const expires = attrMap.get('expires');
      const expired =
        (maxAge !== undefined && Number(maxAge) <= 0) ||
        (expires !== undefined && !Number.isNaN(Date.parse(expires)) && Date.parse(expires) <= Date.now());
      this.raw.set(name, line);
      if (expired || value === '') this.values.delete(name);
      else this.values.set(name, value);
    }
  }

  header() {
    return [...this.values].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  has(name) {
    return this.values.has(name);
  }

  names() {
    return [...this.values.keys()];
  }
}

const NAMED_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** Decode the HTML character references that can appear in attribute values. */
export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, ref) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return Number.isFinite(code) ? String.fromCodePoint(code) : m;
    }
    const named = NAMED_ENTITIES[ref.toLowerCase()];
    return named === undefined ? m : named;
  });
}

/** Parse the attributes of one start tag's attribute text into a Map (lower-case names). */
export function parseAttributes(text) {
  const attrs = new Map();
  const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    const name = m[1].toLowerCase();
    if (attrs.has(name)) continue; // first occurrence wins, as in HTML
    const value = m[2] ?? m[3] ?? m[4] ?? '';
    attrs.set(name, decodeEntities(value));
  }
  return attrs;
}

/**
 * Find all <form> elements in an HTML document and return, for each, its
 * method, action, inputs (name/type/value) and buttons (name/type/value).
 * Good enough for server-rendered pages; not a general HTML parser.
 */
export function parseForms(html) {
  // Drop comments, scripts and styles so their content cannot confuse the regexes.
  const cleaned = html
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/<script\b[\s\S]*?<\/script\s*>/gi, '')
    .replace(/<style\b[\s\S]*?<\/style\s*>/gi, '');
  const forms = [];
  const formRe = /<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi;
  let fm;
  while ((fm = formRe.exec(cleaned)) !== null) {
    const attrs = parseAttributes(fm[1]);
    const inner = fm[2];
    const inputs = [];
    const inputRe = /<input\b([^>]*)>/gi;
    let im;
    while ((im = inputRe.exec(inner)) !== null) {
      const a = parseAttributes(im[1]);
      inputs.push({
        name: a.get('name'),
        type: (a.get('type') || 'text').toLowerCase(),
        value: a.get('value') ?? '',
        disabled: a.has('disabled'),
        attrs: a,
      });
    }
    const buttons = [];
    const buttonRe = /<button\b([^>]*)>([\s\S]*?)<\/button\s*>/gi;
    let bm;
    while ((bm = buttonRe.exec(inner)) !== null) {
      const a = parseAttributes(bm[1]);
      buttons.push({
        name: a.get('name'),
        type: (a.get('type') || 'submit').toLowerCase(),
        value: a.get('value') ?? '',
        text: bm[2].replace(/<[^>]*>/g, '').trim(),
        attrs: a,
      });
    }
    forms.push({
      method: (attrs.get('method') || 'get').toLowerCase(),
      action: attrs.get('action'),
      attrs,
      inputs,
      buttons,
    });
  }
  return forms;
}

/** Resolve a (possibly relative or missing) form action against the page URL. */
export function resolveAction(action, pageUrl) {
  if (action === undefined || action === '') return new URL(pageUrl);
  return new URL(action, pageUrl);
}

/** Assert the response is a redirect with one of `statuses` and return the absolute Location URL. */
export function redirectTarget(response, requestUrl, statuses, what) {
  const location = response.headers.get('location');
  assert.ok(
    statuses.includes(response.status),
    `${what}: expected HTTP ${statuses.join(' or ')}, got ${response.status}` +
      (location ? ` (Location: ${location})` : ''),
  );
  assert.ok(location, `${what}: HTTP ${response.status} without a Location header`);
  return new URL(location, requestUrl);
}

/** Read a response body as text, truncated for messages. */
export async function snippet(response, max = 400) {
  try {
    const text = await response.text();
    const flat = text.replace(/\s+/g, ' ').trim();
    return flat.length > max ? `${flat.slice(0, max)}...` : flat;
  } catch {
    return '<unreadable body>';
  }
}

/** Decode a JWT's payload without verifying it (for assertions only). */
export function decodeJwtPayload(jwt) {
  const parts = String(jwt).split('.');
  assert.equal(parts.length, 3, 'ID token is not a compact JWS (expected 3 dot-separated parts)');
  return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
}

/** Return the aud claim as an array. */
export function audList(aud) {
  return Array.isArray(aud) ? aud : [aud];
}
