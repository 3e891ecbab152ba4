// Walks autional's server-rendered authorization pages (sign-in, consent) with plain
// fetch, a cookie jar and manual redirects, the way interop-openid-client.mjs does.
// Shared by the interop scripts that need an authorization code but not a browser.

import assert from 'node:assert/strict';
import {
  CookieJar,
  decodeEntities,
  parseForms,
  redirectTarget,
  resolveAction,
  snippet,
} from './common.mjs';

const HTTP_TIMEOUT_MS = 15_000;

/** The visible text of an HTML document: tags dropped, entities decoded, whitespace folded. */
export function visibleText(html) {
  const body = html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<script\b[\s\S]*?<\/script\s*>/gi, ' ')
    .replace(/<style\b[\s\S]*?<\/style\s*>/gi, ' ')
    .replace(/<title\b[\s\S]*?<\/title\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ');
  return decodeEntities(body).replace(/\s+/g, ' ').trim();
}

/** The text of each <li> inside the first <ul class="…details…"> (RAR lines), if any. */
export function detailItems(html) {
  const m = /<ul\b[^>]*class\s*=\s*"[^"]*\bdetails\b[^"]*"[^>]*>([\s\S]*?)<\/ul\s*>/i.exec(html);
  if (!m) return [];
  return [...m[1].matchAll(/<li\b[^>]*>([\s\S]*?)<\/li\s*>/gi)].map((li) => visibleText(li[1]));
}

/** Name/value pairs of a form's hidden inputs (excluding disabled ones). */
export function hiddenFields(form) {
  return form.inputs.filter((i) => i.type === 'hidden' && i.name && !i.disabled).map((i) => [i.name, i.value]);
}

/**
 * One user agent: a cookie jar and fetch with manual redirects and a browser-like
 * Origin header on form posts.
 */
export class PageWalker {
  constructor({ issuer, redirectUri, username, password }) {
    this.issuer = issuer;
    this.origin = new URL(issuer).origin;
    this.redirectUri = redirectUri;
    this.username = username;
    this.password = password;
    this.jar = new CookieJar();
  }

  async http(url, { method = 'GET', form } = {}) {
    const headers = { accept: 'text/html,application/xhtml+xml' };
    const cookie = this.jar.header();
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = this.origin;
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, {
      method,
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    this.jar.update(res);
    return res;
  }

  /** Expect a 200 HTML page and return its text. */
  async expectHtml(res, what) {
    if (res.status !== 200) {
      const loc = res.headers.get('location');
      assert.fail(`${what}: expected HTTP 200 HTML page, got ${res.status}${loc ? ` (Location: ${loc})` : ''}: ${await snippet(res)}`);
    }
    const ct = res.headers.get('content-type') || '';
    assert.match(ct, /text\/html/i, `${what}: expected text/html content-type, got "${ct}"`);
    return res.text();
  }

  /** GET the authorization URL without a session: expect 303 to /login; returns the sign-in URL. */
  async startWithoutSession(authorizationUrl) {
    const res = await this.http(authorizationUrl);
    if (res.status !== 303) {
      assert.fail(
        `GET authorize (no session): expected HTTP 303 to /login, got ${res.status}` +
          `${res.headers.get('location') ? ` (Location: ${res.headers.get('location')})` : ''}: ${await snippet(res)}`,
      );
    }
    const loginUrl = redirectTarget(res, authorizationUrl, [303], 'GET authorize (no session)');
    assert.equal(loginUrl.origin, this.origin, `sign-in redirect leaves the issuer: ${loginUrl}`);
    assert.equal(loginUrl.pathname, '/login', `expected redirect to /login, got ${loginUrl.pathname}`);
    return loginUrl;
  }

  /** Fill in and post the sign-in form; returns the /oauth/authorize URL it redirects back to. */
  async signIn(loginUrl) {
    const html = await this.expectHtml(await this.http(loginUrl), 'GET sign-in page');
    const form = parseForms(html).find((f) => f.inputs.some((i) => i.name === 'password'));
    assert.ok(form, `sign-in page has no form with a password input; page: ${html.slice(0, 400)}`);
    assert.equal(form.method, 'post', 'sign-in form method must be POST');
    const fields = form.inputs
      .filter((i) => i.name && !i.disabled && !['username', 'password'].includes(i.name))
      .filter((i) => !['submit', 'button', 'reset', 'checkbox', 'radio', 'file', 'image'].includes(i.type))
      .map((i) => [i.name, i.value]);
    fields.push(['username', this.username], ['password', this.password]);
    const submit = form.buttons.find((b) => b.type === 'submit');
    if (submit?.name) fields.push([submit.name, submit.value]);
    const action = resolveAction(form.action, loginUrl);
    assert.equal(action.origin, this.origin, `sign-in form posts off the issuer: ${action}`);
    const res = await this.http(action, { method: 'POST', form: fields });
    if (res.status === 200) {
      assert.fail(`sign-in POST returned 200 (form re-rendered: wrong credentials or CSRF rejected?): ${await snippet(res)}`);
    }
    const back = redirectTarget(res, action, [303], 'POST sign-in');
    assert.equal(back.origin, this.origin, `post-sign-in redirect leaves the issuer: ${back}`);
    assert.equal(back.pathname, '/oauth/authorize', `expected redirect to /oauth/authorize, got ${back.pathname}`);
    assert.ok(this.jar.has('autional_session'), `no autional_session cookie after sign-in; cookies: [${this.jar.names().join(', ')}]`);
    return back;
  }

  /** GET the authorization URL with a session and expect the consent page. */
  async openConsent(url) {
    const res = await this.http(url);
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && loc && new URL(loc, url).href.startsWith(this.redirectUri)) {
      const to = new URL(loc, url);
      assert.fail(
        `the server skipped the consent page and redirected straight to the client (HTTP ${res.status}, ` +
          `parameters ${to.search}); the authorize URL was ${url.pathname}${url.search}`,
      );
    }
    const html = await this.expectHtml(res, 'GET authorize (signed in)');
    const form = parseForms(html).find((f) => f.buttons.some((b) => b.name === 'approved'));
    assert.ok(form, `consent page has no form with button[name=approved]; page: ${html.slice(0, 400)}`);
    assert.equal(form.method, 'post', 'consent form method must be POST');
    const action = resolveAction(form.action, url);
    assert.equal(action.origin, this.origin, `consent form posts off the issuer: ${action}`);
    assert.equal(action.pathname, '/oauth/authorize', `consent form action must be /oauth/authorize, got ${action.pathname}`);
    assert.ok(
      hiddenFields(form).some(([n, v]) => n === 'csrf_token' && v.length > 0),
      'consent form lacks a non-empty hidden csrf_token',
    );
    return { html, form, url, action, text: visibleText(html), details: detailItems(html) };
  }

  /** Post the consent decision; returns the redirect (callback) URL at REDIRECT_URI. */
  async decide(consent, approved) {
    const fields = hiddenFields(consent.form);
    fields.push(['approved', approved ? 'true' : 'false']);
    const res = await this.http(consent.action, { method: 'POST', form: fields });
    if (res.status === 200 || res.status >= 400) {
      assert.fail(`POST consent: expected a redirect to the client, got HTTP ${res.status}: ${await snippet(res)}`);
    }
    const callback = redirectTarget(res, consent.action, [302, 303], 'POST consent');
    assert.ok(
      callback.href.startsWith(this.redirectUri),
      `consent redirect must go to REDIRECT_URI ${this.redirectUri}, got ${callback.href}`,
    );
    return callback;
  }
}
