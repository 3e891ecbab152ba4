#!/usr/bin/env node
// Browser end-to-end test: drives autional's sign-in and consent pages in headless
// Chromium (Debian's /usr/bin/chromium through playwright-core), then exchanges
// the code and refreshes with plain fetch.
//
// Environment:
//   AUTIONAL_ISSUER  issuer and base URL, e.g. http://127.0.0.1:43123
//   CLIENT_ID        a public client (token_endpoint_auth_method "none")
//   REDIRECT_URI     a redirect URI registered for that client (nothing needs to listen)
//   USERNAME, PASSWORD  an existing user's credentials
//   ARTIFACT_DIR     optional: where to write consent.png (and failure screenshots)
//   CHROMIUM_PATH    optional: browser binary (default /usr/bin/chromium)
//   JS_TEST_TIMEOUT_MS  optional overall timeout (default 120000)
//   JS_TEST_VERBOSE     optional: print stack traces and browser console on failure
//
// Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { audList, createRunner, decodeJwtPayload, normaliseIssuer, requireEnv, snippet } from './common.mjs';

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID', 'REDIRECT_URI', 'USERNAME', 'PASSWORD']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID, REDIRECT_URI, USERNAME, PASSWORD } = env;
const ISSUER_ORIGIN = new URL(ISSUER).origin;
const ARTIFACT_DIR = process.env.ARTIFACT_DIR || '';
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ACTION_TIMEOUT_MS = 15_000;
const HTTP_TIMEOUT_MS = 15_000;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The redirect URI may use a port Chromium refuses by default (e.g. 9, "discard");
  // nothing listens there anyway, we only need to see the navigation.
  `--explicitly-allowed-ports=${new URL(REDIRECT_URI).port || (new URL(REDIRECT_URI).protocol === 'https:' ? 443 : 80)}`,
];

const tempDirs = [];
const openContexts = new Set();

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function pkcePair() {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

function buildAuthorizeUrl({ state, nonce, challenge, scope }) {
  const url = new URL(`${ISSUER}/oauth/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    // The server remembers consent per user and client; prompt=consent makes it show
    // the consent page every time, so runs do not depend on earlier grants in the same
    // database (and the deny run after the approve run still gets a consent page).
    prompt: 'consent',
  }).toString();
  return url;
}

async function newBrowserContext(label) {
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH} (run scripts/setup, or set CHROMIUM_PATH)`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), `autional-e2e-${label}-`));
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

async function closeContext(context) {
  openContexts.delete(context);
  await context.close().catch(() => {});
}

async function saveScreenshot(page, name) {
  if (!ARTIFACT_DIR) return null;
  fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
  const file = path.join(ARTIFACT_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Arrange to capture the browser's navigation to REDIRECT_URI. Nothing listens
 * there: requests the browser makes to it directly are fulfilled by a route,
 * and the request event also catches it when it is the target of a server
 * redirect (which page.route does not intercept).
 */
async function captureRedirect(page) {
  const isCallback = (u) => u.startsWith(REDIRECT_URI);
  await page.route(
    (u) => isCallback(u.href),
    (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'ok' }),
  );
  const request = page.waitForRequest((req) => isCallback(req.url()), { timeout: ACTION_TIMEOUT_MS });
  request.catch(() => {}); // awaited by the caller; avoid an unhandled rejection meanwhile
  return { url: () => request.then((req) => new URL(req.url())) };
}

/** Go through sign-in and stop at the consent page. Returns the page. */
async function signInToConsent(page, authorizeUrl) {
  const resp = await page.goto(authorizeUrl.href, { waitUntil: 'domcontentloaded' });
  assert.ok(resp, 'no response for the authorize URL');
  const here = new URL(page.url());
  assert.equal(here.origin, ISSUER_ORIGIN, `authorize did not stay on the issuer: ${page.url()}`);
  assert.equal(here.pathname, '/login', `expected the sign-in page at /login, browser is at ${page.url()} (HTTP ${resp.status()})`);
  assert.equal(resp.status(), 200, `sign-in page answered HTTP ${resp.status()}`);
  await page.locator('input[name=username]').fill(USERNAME);
  await page.locator('input[name=password]').fill(PASSWORD);
  assert.equal(await page.locator('input[name=csrf_token]').count(), 1, 'sign-in form lacks a csrf_token input');
  const consentReached = page.waitForURL((u) => u.origin === ISSUER_ORIGIN && u.pathname === '/oauth/authorize', {
    waitUntil: 'domcontentloaded',
  });
  consentReached.catch(() => {}); // awaited below; avoid an unhandled rejection meanwhile
  const toClient = [];
  const onRequest = (req) => {
    if (req.url().startsWith(REDIRECT_URI)) toClient.push(req.url());
  };
  page.on('request', onRequest);
  await page.locator('button[type=submit]').click();
  try {
    await consentReached;
  } catch (e) {
    if (toClient.length > 0) {
      const params = [...new URL(toClient[0]).searchParams.keys()].join(', ');
      throw new Error(
        `after sign-in the server skipped the consent page and redirected straight to the client ` +
          `(${REDIRECT_URI} with parameters [${params}]) although the authorization request had prompt=consent`,
      );
    }
    throw new Error(`after submitting the sign-in form the browser did not reach /oauth/authorize; it is at ${page.url()}: ${await pageText(page)}`);
  } finally {
    page.off('request', onRequest);
  }
  await page.locator('button[name=approved][value=true]').waitFor({ state: 'visible' });
  assert.equal(await page.locator('button[name=approved][value=false]').count(), 1, 'consent page lacks button[name=approved][value=false]');
  assert.equal(await page.locator('form input[type=hidden][name=csrf_token]').count(), 1, 'consent form lacks a hidden csrf_token');
  return page;
}

async function pageText(page) {
  try {
    const t = (await page.locator('body').innerText({ timeout: 2000 })).replace(/\s+/g, ' ').trim();
    return t.length > 300 ? `${t.slice(0, 300)}…` : t;
  } catch {
    return '<no page text>';
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

async function expectJson(res, status, what) {
  const ct = res.headers.get('content-type') || '';
  if (res.status !== status) {
    assert.fail(`${what}: expected HTTP ${status}, got ${res.status}: ${await snippet(res)}`);
  }
  assert.match(ct, /application\/json/i, `${what}: expected application/json, got "${ct}"`);
  return res.json();
}

const { step, main } = createRunner('e2e-browser');

await main(async () => {
  // ---- Run 1: approve --------------------------------------------------------
  const pkce = pkcePair();
  const state = b64url(crypto.randomBytes(16));
  const nonce = b64url(crypto.randomBytes(16));
  const authorizeUrl = buildAuthorizeUrl({ state, nonce, challenge: pkce.challenge, scope: 'openid profile offline_access' });

  let context;
  let page;
  await step('launch headless Chromium', async () => {
    context = await newBrowserContext('approve');
    page = context.pages()[0] || (await context.newPage());
    return `${CHROMIUM_PATH} ${context.browser()?.version() ?? ''}`.trim();
  });

  let callback;
  try {
    await step('sign in through the browser and reach the consent page', async () => {
      await signInToConsent(page, authorizeUrl);
      const shot = await saveScreenshot(page, 'consent.png');
      return `at ${new URL(page.url()).pathname}${shot ? `, screenshot ${shot}` : ''}`;
    });

    await step('click approve; browser is redirected to the client with code, state, iss', async () => {
      const captured = await captureRedirect(page);
      await page.locator('button[name=approved][value=true]').click();
      try {
        callback = await captured.url();
      } catch {
        throw new Error(`no navigation to ${REDIRECT_URI} after approving; browser is at ${page.url()}: ${await pageText(page)}`);
      }
      const p = callback.searchParams;
      assert.equal(p.get('error'), null, `authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
      assert.ok(p.get('code'), 'redirect lacks code');
      assert.equal(p.get('state'), state, 'redirect state does not match');
      assert.equal(p.get('iss'), ISSUER, 'redirect iss does not equal the issuer');
      return `${callback.origin}${callback.pathname}?code=…&state=…&iss=${p.get('iss')}`;
    });
  } catch (err) {
    await saveScreenshot(page, 'failure-approve.png').catch(() => {});
    throw err;
  } finally {
    await closeContext(context);
  }

  let tokens;
  await step('exchange the code at /oauth/token with fetch', async () => {
    const res = await postForm(`${ISSUER}/oauth/token`, {
      grant_type: 'authorization_code',
      code: callback.searchParams.get('code'),
      redirect_uri: REDIRECT_URI,
      client_id: CLIENT_ID,
      code_verifier: pkce.verifier,
    });
    tokens = await expectJson(res, 200, 'token endpoint');
    assert.ok(tokens.access_token, 'no access_token');
    assert.ok(tokens.refresh_token, 'no refresh_token (offline_access was requested)');
    assert.ok(String(tokens.refresh_token).startsWith('rt_'), 'refresh_token must start with rt_');
    assert.ok(tokens.id_token, 'no id_token');
    assert.match(String(tokens.token_type), /^bearer$/i, `token_type must be Bearer, got ${tokens.token_type}`);
    const claims = decodeJwtPayload(tokens.id_token);
    assert.equal(claims.iss, ISSUER, 'ID token iss');
    assert.ok(audList(claims.aud).includes(CLIENT_ID), `ID token aud ${JSON.stringify(claims.aud)} lacks ${CLIENT_ID}`);
    assert.equal(claims.nonce, nonce, 'ID token nonce does not match');
    assert.ok(claims.sub, 'ID token sub missing');
    return `token_type=${tokens.token_type} sub=${claims.sub}`;
  });

  await step('POST /oauth/refresh (JSON) rotates the refresh token', async () => {
    const res = await fetch(`${ISSUER}/oauth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ refresh_token: tokens.refresh_token, client_id: CLIENT_ID }),
      redirect: 'manual',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const body = await expectJson(res, 200, '/oauth/refresh');
    assert.equal(typeof body.refresh_token, 'string', `/oauth/refresh response lacks a flat refresh_token: ${JSON.stringify(Object.keys(body))}`);
    assert.ok(body.refresh_token.startsWith('rt_'), 'new refresh_token must start with rt_');
    assert.notEqual(body.refresh_token, tokens.refresh_token, 'new refresh_token must differ from the old one');
    assert.match(String(body.token_type), /^bearer$/i, `token_type must be Bearer, got ${body.token_type}`);
    assert.ok(body.access_token, '/oauth/refresh response lacks access_token');
    return `keys=[${Object.keys(body).join(', ')}]`;
  });

  // ---- Run 2: deny, in a fresh browser profile ------------------------------
  const state2 = b64url(crypto.randomBytes(16));
  const pkce2 = pkcePair();
  const denyUrl = buildAuthorizeUrl({
    state: state2,
    nonce: b64url(crypto.randomBytes(16)),
    challenge: pkce2.challenge,
    scope: 'openid profile offline_access',
  });
  let context2;
  let page2;
  try {
    await step('fresh browser: sign in and reach the consent page again', async () => {
      context2 = await newBrowserContext('deny');
      page2 = context2.pages()[0] || (await context2.newPage());
      await signInToConsent(page2, denyUrl);
      return `at ${new URL(page2.url()).pathname}`;
    });

    await step('click deny; redirect carries error=access_denied and state', async () => {
      const captured = await captureRedirect(page2);
      await page2.locator('button[name=approved][value=false]').click();
      let cb;
      try {
        cb = await captured.url();
      } catch {
        throw new Error(`no navigation to ${REDIRECT_URI} after denying; browser is at ${page2.url()}: ${await pageText(page2)}`);
      }
      const p = cb.searchParams;
      assert.equal(p.get('error'), 'access_denied', `expected error=access_denied, got ${cb.search}`);
      assert.equal(p.get('state'), state2, 'deny redirect state does not match');
      assert.equal(p.get('code'), null, 'deny redirect must not carry a code');
      assert.equal(p.get('iss'), ISSUER, 'deny redirect iss does not equal the issuer');
      return `error=${p.get('error')} state matches, iss=${p.get('iss')}`;
    });
  } catch (err) {
    if (page2) await saveScreenshot(page2, 'failure-deny.png').catch(() => {});
    throw err;
  } finally {
    if (context2) await closeContext(context2);
  }
});

// Clean up whatever is left (also after failures).
for (const c of openContexts) await c.close().catch(() => {});
for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
