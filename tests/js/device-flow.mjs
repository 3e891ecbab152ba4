#!/usr/bin/env node
// Device authorization grant (RFC 8628) end to end: openid-client 6 plays the device
// (initiateDeviceAuthorization, then pollDeviceAuthorizationGrant), while headless Chromium
// (Debian's /usr/bin/chromium through playwright-core) plays the user on the device page:
// sign in, enter the user code, see the client and scopes, approve. The poll must resolve
// with tokens after having been told `authorization_pending`; then one refresh. A second
// device authorization is denied on the page and the poll must reject with access_denied.
// Also: the polled device_code cannot be exchanged twice, and polling faster than the
// interval gets `slow_down`.
//
// Environment:
//   AUTIONAL_ISSUER  issuer and base URL, e.g. http://127.0.0.1:43123
//   CLIENT_ID        a public client allowed the device_code and refresh_token grants
//   CLIENT_NAME      that client's display name (default "TV")
//   DEVICE_INTERVAL  the polling interval the server is configured with, seconds (default 5)
//   USERNAME, PASSWORD  an existing user's credentials
//   ARTIFACT_DIR     optional: where to write device.png (and failure screenshots)
//   CHROMIUM_PATH    optional: browser binary (default /usr/bin/chromium)
//   JS_TEST_TIMEOUT_MS  optional overall timeout (default 120000)
//   JS_TEST_VERBOSE     optional: print stack traces on failure
//
// Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as client from 'openid-client';
import { chromium } from 'playwright-core';
import { audList, createRunner, normaliseIssuer, requireEnv, snippet } from './common.mjs';

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID', 'USERNAME', 'PASSWORD']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID, USERNAME, PASSWORD } = env;
const CLIENT_NAME = process.env.CLIENT_NAME || 'TV';
const INTERVAL = Number(process.env.DEVICE_INTERVAL || 5);
const ISSUER_ORIGIN = new URL(ISSUER).origin;
const ARTIFACT_DIR = process.env.ARTIFACT_DIR || '';
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ACTION_TIMEOUT_MS = 15_000;
const HTTP_TIMEOUT_MS = 15_000;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// RFC 8628 §6.1: the server's alphabet (consonants without look-alikes), shown as XXXX-XXXX.
const USER_CODE_RE = /^[BCDFGHJKMNPQRSTVWXZ]{4}-[BCDFGHJKMNPQRSTVWXZ]{4}$/;

// The same launch arguments as e2e-browser.mjs (no redirect to a client here, so no
// explicitly allowed port is needed).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const tempDirs = [];
const openContexts = new Set();
const pollAborts = new Set();

/**
 * Every response the library got from the token endpoint for the device grant, recorded by the
 * custom fetch: when the request left, which device_code, HTTP status and OAuth error.
 */
const polls = [];

function bodyParams(body) {
  if (body instanceof URLSearchParams) return body;
  if (typeof body === 'string') return new URLSearchParams(body);
  return new URLSearchParams();
}

async function recordingFetch(url, options) {
  const sentAt = Date.now();
  const res = await fetch(url, options);
  const params = bodyParams(options?.body);
  if (params.get('grant_type') === DEVICE_GRANT) {
    let error;
    if (res.status >= 400) {
      try {
        error = (await res.clone().json()).error;
      } catch {
        error = '<no JSON body>';
      }
    }
    polls.push({ sentAt, deviceCode: params.get('device_code'), status: res.status, error });
  }
  return res;
}

function pollsOf(deviceCode) {
  return polls.filter((p) => p.deviceCode === deviceCode);
}

function describePolls(deviceCode) {
  const mine = pollsOf(deviceCode);
  return mine
    .map((p, i) => `${i === 0 ? '' : `+${p.sentAt - mine[i - 1].sentAt}ms `}${p.status}${p.error ? ` ${p.error}` : ''}`)
    .join(', ');
}

async function waitFor(predicate, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function newBrowserContext(label) {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH} (run scripts/setup, or set CHROMIUM_PATH)`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `autional-device-${label}-`));
  tempDirs.push(userDataDir);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 30_000,
    viewport: { width: 1000, height: 800 },
  });
  openContexts.add(context);
  context.setDefaultTimeout(ACTION_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
  return context;
}

async function saveScreenshot(page, name) {
  if (!ARTIFACT_DIR) return null;
  fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
  const file = path.join(ARTIFACT_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function pageText(page) {
  try {
    const t = (await page.locator('body').innerText({ timeout: 2000 })).replace(/\s+/g, ' ').trim();
    return t.length > 300 ? `${t.slice(0, 300)}…` : t;
  } catch {
    return '<no page text>';
  }
}

/** Starts the library's polling loop; returns the promise and a way to stop it. */
function startPolling(config, authorization) {
  const ac = new AbortController();
  pollAborts.add(ac);
  const promise = client.pollDeviceAuthorizationGrant(config, authorization, undefined, { signal: ac.signal });
  promise.catch(() => {}); // awaited later; avoid an unhandled rejection meanwhile
  return { promise, stop: () => ac.abort() };
}

/** On the confirmation page (code known): the client's name, the code and the scopes. Callers add the page text to failures. */
async function checkConfirmation(page, authorization, scopes) {
  await page.locator('button[name=approved][value=true]').waitFor({ state: 'visible' });
  assert.equal(await page.locator('button[name=approved][value=false]').count(), 1, 'device page lacks button[name=approved][value=false]');
  assert.equal(
    await page.locator('form:has(button[name=approved]) input[type=hidden][name=csrf_token]').count(),
    1,
    'the approval form lacks a hidden csrf_token',
  );
  const text = await page.locator('body').innerText();
  assert.ok(text.includes(CLIENT_NAME), `device page does not name the client "${CLIENT_NAME}"`);
  assert.ok(text.includes(authorization.user_code), `device page does not show the user code ${authorization.user_code}`);
  for (const s of scopes) {
    assert.ok(new RegExp(`\\b${s}\\b`).test(text), `device page does not show the scope "${s}"`);
  }
}

async function postForm(url, fields) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
}

async function expectOAuthError(res, status, error, what) {
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: expected JSON error ${error}, got HTTP ${res.status}: ${text.slice(0, 300)}`);
  }
  assert.equal(res.status, status, `${what}: expected HTTP ${status} ${error}, got ${res.status} ${text.slice(0, 300)}`);
  assert.equal(body.error, error, `${what}: expected error=${error}, got ${text.slice(0, 300)}`);
  return body;
}

const { step, main } = createRunner('device-flow');

await main(async () => {
  let config;
  await step('discovery advertises the device authorization endpoint and grant', async () => {
    config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    config[client.customFetch] = recordingFetch;
    const md = config.serverMetadata();
    assert.equal(md.issuer, ISSUER, 'discovery issuer must equal AUTIONAL_ISSUER');
    assert.equal(md.device_authorization_endpoint, `${ISSUER}/oauth/device/authorize`, 'device_authorization_endpoint');
    assert.ok(md.grant_types_supported?.includes(DEVICE_GRANT), `grant_types_supported lacks ${DEVICE_GRANT}: ${JSON.stringify(md.grant_types_supported)}`);
    return `device_authorization_endpoint=${md.device_authorization_endpoint}`;
  });

  let authorization;
  await step('initiateDeviceAuthorization (scope openid offline_access)', async () => {
    authorization = await client.initiateDeviceAuthorization(config, { scope: 'openid offline_access' });
    const a = authorization;
    assert.equal(typeof a.device_code, 'string', 'device_code missing');
    assert.ok(a.device_code.length >= 32, `device_code looks too short to be unguessable: ${a.device_code.length} chars`);
    assert.match(a.user_code, USER_CODE_RE, 'user_code must be XXXX-XXXX from the unambiguous alphabet');
    assert.equal(a.verification_uri, `${ISSUER}/oauth/device`, 'verification_uri');
    assert.equal(a.verification_uri_complete, `${ISSUER}/oauth/device?user_code=${a.user_code}`, 'verification_uri_complete');
    assert.equal(a.expires_in, 600, 'expires_in');
    assert.equal(a.interval, INTERVAL, `interval must be the configured ${INTERVAL} s`);
    return `user_code=${a.user_code} verification_uri=${a.verification_uri} expires_in=${a.expires_in} interval=${a.interval}`;
  });

  const poll = startPolling(config, authorization);

  let context;
  let page;
  try {
    await step('launch headless Chromium', async () => {
      context = await newBrowserContext('device');
      page = context.pages()[0] || (await context.newPage());
      return `${CHROMIUM_PATH} ${context.browser()?.version() ?? ''}`.trim();
    });

    await step('open verification_uri: the device page asks to sign in first', async () => {
      const resp = await page.goto(authorization.verification_uri, { waitUntil: 'domcontentloaded' });
      assert.ok(resp, 'no response for verification_uri');
      const here = new URL(page.url());
      assert.equal(here.origin, ISSUER_ORIGIN, `left the issuer: ${page.url()}`);
      assert.equal(here.pathname, '/login', `expected the sign-in page at /login, browser is at ${page.url()} (HTTP ${resp.status()})`);
      assert.equal(here.searchParams.get('return_to'), '/oauth/device', `return_to should lead back to the device page: ${here.search}`);
      return `at ${here.pathname}${here.search}`;
    });

    await step('sign in; back on the device page with a user_code input', async () => {
      await page.locator('input[name=username]').fill(USERNAME);
      await page.locator('input[name=password]').fill(PASSWORD);
      const back = page.waitForURL((u) => u.origin === ISSUER_ORIGIN && u.pathname === '/oauth/device', {
        waitUntil: 'domcontentloaded',
      });
      back.catch(() => {});
      await page.locator('button[type=submit]').click();
      try {
        await back;
      } catch {
        throw new Error(`after signing in the browser did not come back to /oauth/device; it is at ${page.url()}: ${await pageText(page)}`);
      }
      await page.locator('input[name=user_code]').waitFor({ state: 'visible' });
      assert.equal(
        await page.locator('form:has(input[name=user_code]) input[type=hidden][name=csrf_token]').count(),
        1,
        'the user code form lacks a hidden csrf_token',
      );
      return `at ${new URL(page.url()).pathname}`;
    });

    await step('enter the user code: the page names the client and the scopes', async () => {
      await page.locator('input[name=user_code]').fill(authorization.user_code);
      await page.locator('form:has(input[name=user_code]) button[type=submit]').click();
      try {
        await checkConfirmation(page, authorization, ['openid', 'offline_access']);
      } catch (e) {
        throw new Error(`${e.message} (browser at ${page.url()}: ${await pageText(page)})`);
      }
      const shot = await saveScreenshot(page, 'device.png');
      return `client "${CLIENT_NAME}", scopes openid offline_access${shot ? `, screenshot ${shot}` : ''}`;
    });

    await step('the library has been told authorization_pending meanwhile', async () => {
      // The first poll comes one interval after the authorization; the steps above usually take
      // longer, but do not depend on it.
      await waitFor(
        () => pollsOf(authorization.device_code).some((p) => p.error === 'authorization_pending'),
        ACTION_TIMEOUT_MS,
        'a poll answered authorization_pending',
      );
      return describePolls(authorization.device_code);
    });

    await step('approve: the page says "Device connected"', async () => {
      await page.locator('button[name=approved][value=true]').click();
      try {
        await page.getByText('Device connected').waitFor({ state: 'visible' });
      } catch {
        throw new Error(`no "Device connected" after approving; browser at ${page.url()}: ${await pageText(page)}`);
      }
      return `at ${new URL(page.url()).pathname}`;
    });
  } catch (err) {
    poll.stop();
    if (page) await saveScreenshot(page, 'failure-device.png').catch(() => {});
    throw err;
  }

  let tokens;
  await step('pollDeviceAuthorizationGrant resolves with access, refresh and ID tokens', async () => {
    try {
      tokens = await poll.promise;
    } catch (e) {
      throw new Error(`the poll rejected: ${e.message} (error=${e.error}); polls: ${describePolls(authorization.device_code)}`);
    }
    assert.match(String(tokens.token_type), /^bearer$/i, `token_type must be Bearer, got ${tokens.token_type}`);
    assert.ok(tokens.access_token, 'no access_token');
    assert.equal(typeof tokens.refresh_token, 'string', 'no refresh_token (offline_access was requested)');
    assert.ok(tokens.refresh_token.startsWith('rt_'), `refresh_token must start with rt_, got ${tokens.refresh_token.slice(0, 6)}…`);
    assert.ok(tokens.id_token, 'no id_token (openid was requested)');
    const claims = tokens.claims();
    assert.equal(claims.iss, ISSUER, 'ID token iss');
    assert.ok(audList(claims.aud).includes(CLIENT_ID), `ID token aud ${JSON.stringify(claims.aud)} lacks ${CLIENT_ID}`);
    assert.ok(typeof claims.sub === 'string' && claims.sub.length > 0, 'ID token sub missing');
    assert.equal(claims.nonce, undefined, 'a device grant ID token has no nonce');
    assert.equal(String(tokens.scope).split(' ').sort().join(' '), 'offline_access openid', `scope: ${tokens.scope}`);
    const mine = pollsOf(authorization.device_code);
    const pending = mine.filter((p) => p.error === 'authorization_pending').length;
    const slow = mine.filter((p) => p.error === 'slow_down').length;
    assert.ok(pending >= 1, `the library was never told authorization_pending; polls: ${describePolls(authorization.device_code)}`);
    // The library waits the interval between polls, so the server has no reason to say slow_down.
    assert.equal(slow, 0, `the server said slow_down to a client polling every ${INTERVAL} s; polls: ${describePolls(authorization.device_code)}`);
    for (let i = 1; i < mine.length; i += 1) {
      const gap = mine[i].sentAt - mine[i - 1].sentAt;
      assert.ok(gap >= INTERVAL * 1000 - 50, `the library polled after ${gap} ms, faster than the ${INTERVAL} s interval`);
    }
    assert.equal(mine.at(-1).status, 200, 'the last poll must be the successful one');
    return `${mine.length} polls (${pending} authorization_pending): ${describePolls(authorization.device_code)}; sub=${claims.sub}`;
  });

  await step('the device_code cannot be exchanged again (invalid_grant)', async () => {
    const res = await postForm(`${ISSUER}/oauth/token`, {
      grant_type: DEVICE_GRANT,
      device_code: authorization.device_code,
      client_id: CLIENT_ID,
    });
    await expectOAuthError(res, 400, 'invalid_grant', 'second exchange of the device_code');
    return 'HTTP 400 invalid_grant';
  });

  await step('refreshTokenGrant rotates the refresh token and returns a new ID token', async () => {
    const firstClaims = tokens.claims();
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(refreshed.access_token, 'no access_token from refresh');
    assert.equal(typeof refreshed.refresh_token, 'string', 'no refresh_token from refresh (rotation expected)');
    assert.ok(refreshed.refresh_token.startsWith('rt_'), 'rotated refresh_token must start with rt_');
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'rotated refresh_token must differ from the old one');
    const c2 = refreshed.claims();
    assert.ok(c2, 'refresh response carries no ID token');
    assert.equal(c2.sub, firstClaims.sub, 'refreshed ID token sub differs');
    assert.equal(c2.auth_time, firstClaims.auth_time, 'refreshed ID token auth_time must equal the original');
    return `new refresh token issued, sub=${c2.sub}`;
  });

  await step('polling faster than the interval gets slow_down (plain fetch)', async () => {
    const res = await postForm(`${ISSUER}/oauth/device/authorize`, { client_id: CLIENT_ID, scope: 'openid' });
    if (res.status !== 200) assert.fail(`device authorization: HTTP ${res.status}: ${await snippet(res)}`);
    const a = await res.json();
    const pollOnce = () => postForm(`${ISSUER}/oauth/token`, { grant_type: DEVICE_GRANT, device_code: a.device_code, client_id: CLIENT_ID });
    await expectOAuthError(await pollOnce(), 400, 'authorization_pending', 'first poll');
    await expectOAuthError(await pollOnce(), 400, 'slow_down', 'an immediate second poll');
    return 'authorization_pending, then slow_down';
  });

  // ---- Denial: a second device authorization, denied on the page ---------------------------
  let denied;
  await step('second initiateDeviceAuthorization', async () => {
    denied = await client.initiateDeviceAuthorization(config, { scope: 'openid offline_access' });
    assert.match(denied.user_code, USER_CODE_RE, 'user_code format');
    assert.notEqual(denied.user_code, authorization.user_code, 'a new user code');
    return `user_code=${denied.user_code}`;
  });
  const denyPoll = startPolling(config, denied);

  try {
    await step('open verification_uri_complete (signed in): the code is already known', async () => {
      await page.goto(denied.verification_uri_complete, { waitUntil: 'domcontentloaded' });
      const here = new URL(page.url());
      assert.equal(here.pathname, '/oauth/device', `expected the device page, browser is at ${page.url()}`);
      try {
        await checkConfirmation(page, denied, ['openid', 'offline_access']);
      } catch (e) {
        throw new Error(`${e.message} (browser at ${page.url()}: ${await pageText(page)})`);
      }
      return `at ${here.pathname}${here.search}`;
    });

    await step('deny on the page', async () => {
      await page.locator('button[name=approved][value=false]').click();
      try {
        await page.getByText('Request denied').waitFor({ state: 'visible' });
      } catch {
        throw new Error(`no "Request denied" after denying; browser at ${page.url()}: ${await pageText(page)}`);
      }
      assert.equal(await page.getByText('Device connected').count(), 0, 'a denial must not say "Device connected"');
      return `at ${new URL(page.url()).pathname}`;
    });
  } catch (err) {
    denyPoll.stop();
    if (page) await saveScreenshot(page, 'failure-device-deny.png').catch(() => {});
    throw err;
  } finally {
    if (context) {
      openContexts.delete(context);
      await context.close().catch(() => {});
    }
  }

  await step('pollDeviceAuthorizationGrant rejects with access_denied', async () => {
    let err;
    try {
      const t = await denyPoll.promise;
      assert.fail(`the poll resolved with tokens after the user denied (got ${Object.keys(t).join(', ')})`);
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      err = e;
    }
    assert.ok(
      err instanceof client.ResponseBodyError,
      `expected openid-client ResponseBodyError, got ${err?.name}: ${err?.message} (code=${err?.code})`,
    );
    assert.equal(err.error, 'access_denied', `expected error=access_denied, got ${err.error} (HTTP ${err.status})`);
    return `HTTP ${err.status} error=${err.error}; polls: ${describePolls(denied.device_code)}`;
  });
});

// Clean up whatever is left (also after failures).
for (const ac of pollAborts) ac.abort();
for (const c of openContexts) await c.close().catch(() => {});
for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
