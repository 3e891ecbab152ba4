#!/usr/bin/env node
// Interoperability test: autional against openid-client v6 (a certified OpenID
// Connect Relying Party library), driving the server's HTML sign-in and consent
// pages with plain fetch.
//
// Environment:
//   AUTIONAL_ISSUER  issuer and base URL, e.g. http://127.0.0.1:43123
//   CLIENT_ID        a public client (token_endpoint_auth_method "none")
//   REDIRECT_URI     a redirect URI registered for that client (nothing needs to listen)
//   USERNAME, PASSWORD  an existing user's credentials
//   JS_TEST_TIMEOUT_MS  optional overall timeout (default 120000)
//   JS_TEST_VERBOSE     optional: print stack traces on failure
//
// Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.

import assert from 'node:assert/strict';
import * as client from 'openid-client';
import {
  CookieJar,
  audList,
  createRunner,
  normaliseIssuer,
  parseForms,
  redirectTarget,
  requireEnv,
  resolveAction,
  snippet,
} from './common.mjs';

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID', 'REDIRECT_URI', 'USERNAME', 'PASSWORD']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID, REDIRECT_URI, USERNAME, PASSWORD } = env;
const ISSUER_ORIGIN = new URL(ISSUER).origin;
const HTTP_TIMEOUT_MS = 15_000;

const jar = new CookieJar();

/** fetch with manual redirects, our cookie jar, and browser-like Origin on POSTs. */
async function http(url, { method = 'GET', form } = {}) {
  const headers = { accept: 'text/html,application/xhtml+xml' };
  const cookie = jar.header();
  if (cookie) headers.cookie = cookie;
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    headers.origin = ISSUER_ORIGIN;
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(url, {
    method,
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  jar.update(res);
  return res;
}

/** Expect a 200 HTML page and return its text. */
async function expectHtml(res, what) {
  if (res.status !== 200) {
    const loc = res.headers.get('location');
    throw new assert.AssertionError({
      message: `${what}: expected HTTP 200 HTML page, got ${res.status}${loc ? ` (Location: ${loc})` : ''}: ${await snippet(res)}`,
    });
  }
  const ct = res.headers.get('content-type') || '';
  assert.match(ct, /text\/html/i, `${what}: expected text/html content-type, got "${ct}"`);
  return res.text();
}

/** Collect name/value pairs of the hidden inputs of a form (excluding disabled ones). */
function hiddenFields(form) {
  return form.inputs.filter((i) => i.type === 'hidden' && i.name && !i.disabled).map((i) => [i.name, i.value]);
}

async function expectInvalidGrant(promise, what) {
  let err;
  try {
    const res = await promise;
    assert.fail(`${what}: expected the server to reject the request with invalid_grant, but it succeeded (got new refresh_token ${res.refresh_token ? 'yes' : 'no'})`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(
    err instanceof client.ResponseBodyError,
    `${what}: expected openid-client ResponseBodyError, got ${err?.name}: ${err?.message} (code=${err?.code})`,
  );
  assert.equal(err.error, 'invalid_grant', `${what}: expected error=invalid_grant, got error=${err.error} (HTTP ${err.status})`);
  return err;
}

const { step, main } = createRunner('interop-openid-client');

await main(async () => {
  let config;
  await step('discovery', async () => {
    config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, client.None(), {
      execute: [client.allowInsecureRequests],
    });
    const md = config.serverMetadata();
    assert.equal(md.issuer, ISSUER, 'discovery issuer must equal AUTIONAL_ISSUER');
    assert.ok(md.authorization_endpoint, 'discovery lacks authorization_endpoint');
    assert.ok(md.token_endpoint, 'discovery lacks token_endpoint');
    assert.ok(md.userinfo_endpoint, 'discovery lacks userinfo_endpoint');
    assert.ok(md.jwks_uri, 'discovery lacks jwks_uri');
    if (md.code_challenge_methods_supported !== undefined) {
      assert.ok(md.code_challenge_methods_supported.includes('S256'), 'code_challenge_methods_supported lacks S256');
    }
    return `issuer=${md.issuer} authorization_endpoint=${md.authorization_endpoint} token_endpoint=${md.token_endpoint}`;
  });

  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();

  let authorizationUrl;
  await step('build authorization URL (PKCE S256, state, nonce)', async () => {
    authorizationUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile email offline_access',
      code_challenge: codeChallenge,
      code_challenge_method: 'S256',
      state,
      nonce,
      // The server remembers consent per user and client; prompt=consent makes it show
      // the consent page every time, so the run does not depend on earlier grants.
      prompt: 'consent',
    });
    return authorizationUrl.href;
  });

  let loginUrl;
  await step('GET authorize without session redirects to sign-in', async () => {
    const res = await http(authorizationUrl);
    loginUrl = redirectTarget(res, authorizationUrl, [303], 'GET authorize (no session)');
    assert.equal(loginUrl.origin, ISSUER_ORIGIN, `sign-in redirect leaves the issuer: ${loginUrl}`);
    assert.equal(loginUrl.pathname, '/login', `expected redirect to /login, got ${loginUrl.pathname}`);
    return `303 -> ${loginUrl.pathname}${loginUrl.search}`;
  });

  let loginForm;
  await step('GET sign-in page and parse the form', async () => {
    const html = await expectHtml(await http(loginUrl), 'GET sign-in page');
    const forms = parseForms(html);
    loginForm = forms.find((f) => f.inputs.some((i) => i.name === 'password'));
    assert.ok(loginForm, `sign-in page has no form with a password input; page: ${html.slice(0, 400)}`);
    assert.equal(loginForm.method, 'post', 'sign-in form method must be POST');
    const names = loginForm.inputs.map((i) => i.name);
    assert.ok(names.includes('username'), 'sign-in form lacks input[name=username]');
    const csrf = loginForm.inputs.find((i) => i.name === 'csrf_token');
    assert.ok(csrf, 'sign-in form lacks input[name=csrf_token]');
    assert.equal(csrf.type, 'hidden', 'csrf_token input must be hidden');
    assert.ok(csrf.value.length > 0, 'csrf_token is empty');
    const submits = loginForm.buttons.filter((b) => b.type === 'submit');
    assert.equal(submits.length, 1, `sign-in form must have exactly one button[type=submit], found ${submits.length}`);
    return `action=${loginForm.action ?? '(none)'} inputs=[${names.join(', ')}] cookies=[${jar.names().join(', ')}]`;
  });

  let afterLogin;
  await step('POST sign-in form redirects back to authorize', async () => {
    const fields = loginForm.inputs
      .filter((i) => i.name && !i.disabled && !['username', 'password'].includes(i.name))
      .filter((i) => !['submit', 'button', 'reset', 'checkbox', 'radio', 'file', 'image'].includes(i.type))
      .map((i) => [i.name, i.value]);
    fields.push(['username', USERNAME], ['password', PASSWORD]);
    const submit = loginForm.buttons.find((b) => b.type === 'submit');
    if (submit.name) fields.push([submit.name, submit.value]);
    const action = resolveAction(loginForm.action, loginUrl);
    assert.equal(action.origin, ISSUER_ORIGIN, `sign-in form posts off the issuer: ${action}`);
    const res = await http(action, { method: 'POST', form: fields });
    if (res.status === 200) {
      assert.fail(`sign-in POST returned 200 (form re-rendered: wrong credentials or CSRF rejected?): ${await snippet(res)}`);
    }
    afterLogin = redirectTarget(res, action, [303], 'POST sign-in');
    assert.equal(afterLogin.origin, ISSUER_ORIGIN, `post-sign-in redirect leaves the issuer: ${afterLogin}`);
    assert.equal(afterLogin.pathname, '/oauth/authorize', `expected redirect to /oauth/authorize, got ${afterLogin.pathname}`);
    assert.ok(jar.has('autional_session'), `no autional_session cookie after sign-in; cookies: [${jar.names().join(', ')}]`);
    for (const name of ['autional_session', 'autional_csrf']) {
      const line = jar.raw.get(name);
      assert.ok(line, `the server never set the ${name} cookie`);
      const attrs = line.split(';').slice(1).map((a) => a.trim().toLowerCase());
      assert.ok(attrs.includes('httponly'), `${name} cookie lacks HttpOnly: ${line.replace(/=[^;]*/, '=…')}`);
      assert.ok(
        attrs.some((a) => a === 'samesite=lax' || a === 'samesite=strict'),
        `${name} cookie must be SameSite=Lax or Strict: ${line.replace(/=[^;]*/, '=…')}`,
      );
      if (new URL(ISSUER).protocol === 'http:') {
        assert.ok(!attrs.includes('secure'), `${name} cookie is Secure on a plain-http issuer (a browser would drop it)`);
      }
    }
    return `303 -> ${afterLogin.pathname} (cookies: ${jar.names().join(', ')})`;
  });

  let consentForm;
  await step('GET authorize with session shows the consent page', async () => {
    const res = await http(afterLogin);
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && loc && new URL(loc, afterLogin).href.startsWith(REDIRECT_URI)) {
      assert.fail(
        `the server skipped the consent page and redirected straight to the client (HTTP ${res.status}, ` +
          `parameters [${[...new URL(loc, afterLogin).searchParams.keys()].join(', ')}]) although the ` +
          `authorization request had prompt=consent; the authorize URL after sign-in was ${afterLogin.pathname}${afterLogin.search}`,
      );
    }
    const html = await expectHtml(res, 'GET authorize (signed in)');
    const forms = parseForms(html);
    consentForm = forms.find((f) => f.buttons.some((b) => b.name === 'approved'));
    assert.ok(consentForm, `consent page has no form with button[name=approved]; page: ${html.slice(0, 400)}`);
    assert.equal(consentForm.method, 'post', 'consent form method must be POST');
    const action = resolveAction(consentForm.action, afterLogin);
    assert.equal(action.origin, ISSUER_ORIGIN, `consent form posts off the issuer: ${action}`);
    assert.equal(action.pathname, '/oauth/authorize', `consent form action must be /oauth/authorize, got ${action.pathname}`);
    assert.ok(
      consentForm.buttons.some((b) => b.name === 'approved' && b.value === 'true'),
      'consent form lacks button[name=approved][value=true]',
    );
    assert.ok(
      consentForm.buttons.some((b) => b.name === 'approved' && b.value === 'false'),
      'consent form lacks button[name=approved][value=false]',
    );
    const hidden = hiddenFields(consentForm);
    assert.ok(
      hidden.some(([n, v]) => n === 'csrf_token' && v.length > 0),
      'consent form lacks a non-empty hidden csrf_token',
    );
    return `hidden=[${hidden.map(([n]) => n).join(', ')}]`;
  });

  let callbackUrl;
  await step('POST consent approved=true redirects to the client with code, state, iss', async () => {
    const action = resolveAction(consentForm.action, afterLogin);
    const fields = hiddenFields(consentForm);
    fields.push(['approved', 'true']);
    const res = await http(action, { method: 'POST', form: fields });
    callbackUrl = redirectTarget(res, action, [302, 303], 'POST consent');
    assert.ok(
      callbackUrl.href.startsWith(REDIRECT_URI),
      `consent redirect must go to REDIRECT_URI ${REDIRECT_URI}, got ${callbackUrl.href}`,
    );
    const p = callbackUrl.searchParams;
    assert.equal(p.get('error'), null, `authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
    assert.ok(p.get('code'), 'redirect lacks code');
    assert.equal(p.get('state'), state, 'redirect state does not match');
    assert.equal(p.get('iss'), ISSUER, 'redirect iss does not equal the issuer');
    return `${res.status} -> ${REDIRECT_URI}?code=…&state=…&iss=${p.get('iss')}`;
  });

  let tokens;
  let claims;
  await step('authorizationCodeGrant (PKCE, state, nonce, ID token)', async () => {
    tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: codeVerifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    assert.match(String(tokens.token_type), /^bearer$/i, `token_type must be Bearer, got ${tokens.token_type}`);
    assert.ok(tokens.access_token, 'no access_token');
    assert.ok(typeof tokens.refresh_token === 'string', 'no refresh_token (offline_access was requested)');
    assert.ok(tokens.refresh_token.startsWith('rt_'), `refresh_token must start with rt_, got ${tokens.refresh_token.slice(0, 6)}…`);
    claims = tokens.claims();
    assert.ok(claims, 'no ID token claims');
    assert.equal(claims.iss, ISSUER, 'ID token iss');
    assert.ok(audList(claims.aud).includes(CLIENT_ID), `ID token aud ${JSON.stringify(claims.aud)} lacks ${CLIENT_ID}`);
    assert.ok(typeof claims.sub === 'string' && claims.sub.length > 0, 'ID token sub missing');
    assert.equal(claims.nonce, nonce, 'ID token nonce does not match');
    assert.equal(typeof claims.auth_time, 'number', `ID token auth_time missing or not a number: ${claims.auth_time}`);
    return `token_type=${tokens.token_type} sub=${claims.sub} auth_time=${claims.auth_time} expires_in=${tokens.expires_in}`;
  });

  const firstRefreshToken = tokens.refresh_token;
  let refreshed;
  await step('refreshTokenGrant rotates the refresh token and returns a new ID token', async () => {
    refreshed = await client.refreshTokenGrant(config, firstRefreshToken);
    assert.match(String(refreshed.token_type), /^bearer$/i, `token_type must be Bearer, got ${refreshed.token_type}`);
    assert.ok(refreshed.access_token, 'no access_token from refresh');
    assert.ok(typeof refreshed.refresh_token === 'string', 'no refresh_token from refresh (rotation expected)');
    assert.ok(refreshed.refresh_token.startsWith('rt_'), 'rotated refresh_token must start with rt_');
    assert.notEqual(refreshed.refresh_token, firstRefreshToken, 'rotated refresh_token must differ from the old one');
    const c2 = refreshed.claims();
    assert.ok(c2, 'refresh response carries no ID token');
    assert.equal(c2.iss, claims.iss, 'refreshed ID token iss differs');
    assert.equal(c2.sub, claims.sub, 'refreshed ID token sub differs');
    assert.deepEqual(audList(c2.aud).slice().sort(), audList(claims.aud).slice().sort(), 'refreshed ID token aud differs');
    assert.equal(c2.auth_time, claims.auth_time, 'refreshed ID token auth_time must equal the original auth_time');
    assert.equal(c2.nonce, undefined, 'refreshed ID token must not carry a nonce');
    return `new refresh token issued, sub=${c2.sub} auth_time=${c2.auth_time}`;
  });

  await step('fetchUserInfo with the refreshed access token', async () => {
    const info = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
    assert.equal(info.sub, claims.sub, 'userinfo sub differs from ID token sub');
    return `sub=${info.sub} claims=[${Object.keys(info).join(', ')}]`;
  });

  await step('reusing the old refresh token fails with invalid_grant', async () => {
    const err = await expectInvalidGrant(client.refreshTokenGrant(config, firstRefreshToken), 'old refresh token replay');
    return `HTTP ${err.status} error=${err.error}`;
  });

  await step('after reuse, the rotated refresh token is revoked too (family revoked)', async () => {
    const err = await expectInvalidGrant(client.refreshTokenGrant(config, refreshed.refresh_token), 'new refresh token after reuse');
    return `HTTP ${err.status} error=${err.error}`;
  });

  await step('replaying the authorization code fails with invalid_grant', async () => {
    const err = await expectInvalidGrant(
      client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: codeVerifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      }),
      'authorization code replay',
    );
    return `HTTP ${err.status} error=${err.error}`;
  });
});
