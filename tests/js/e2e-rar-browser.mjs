#!/usr/bin/env node
// Browser end-to-end test for Rich Authorization Requests (RFC 9396): an authorization
// request carrying authorization_details, driven in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core). The consent page must show the details in
// plain words; after approval the code is exchanged with fetch and the token response
// must carry the granted authorization_details.
//
// Environment:
//   AUTIONAL_ISSUER  issuer and base URL, e.g. http://127.0.0.1:43123
//   CLIENT_ID        a public client (token_endpoint_auth_method "none")
//   REDIRECT_URI     a redirect URI registered for that client (nothing needs to listen)
//   USERNAME, PASSWORD  an existing user's credentials
//   ARTIFACT_DIR     optional: where to write consent-rar.png (and failure screenshots)
//   CHROMIUM_PATH    optional: browser binary (default /usr/bin/chromium)
//   JS_TEST_TIMEOUT_MS  optional overall timeout (default 120000)
//   JS_TEST_VERBOSE     optional: print stack traces on failure
//
// Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { createRunner, decodeJwtPayload, normaliseIssuer, requireEnv, snippet } from './common.mjs';

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID', 'REDIRECT_URI', 'USERNAME', 'PASSWORD']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID, REDIRECT_URI, USERNAME, PASSWORD } = env;
const ISSUER_ORIGIN = new URL(ISSUER).origin;
const ARTIFACT_DIR = process.env.ARTIFACT_DIR || '';
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ACTION_TIMEOUT_MS = 15_000;

const DETAILS = [
  {
    type: 'account_information',
    actions: ['list_accounts', 'read_balances'],
    locations: ['https://example.com/accounts'],
    identifier: 'account-12345',
  },
  {
    type: 'payment_initiation',
    actions: ['initiate'],
    locations: ['https://example.com/payments'],
    constraints: { instructedAmount: { currency: 'EUR', amount: '123.50' } },
  },
];
const IN_WORDS = [
  'account information: list accounts, read balances for account-12345 at https://example.com/accounts',
  'payment initiation: initiate at https://example.com/payments',
];

const REDIRECT_PORT = new URL(REDIRECT_URI).port || (new URL(REDIRECT_URI).protocol === 'https:' ? '443' : '80');
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The redirect URI may use a port Chromium refuses by default (e.g. 9); nothing listens there.
  `--explicitly-allowed-ports=${REDIRECT_PORT}`,
];

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** JSON with object keys sorted at every level, so comparisons ignore member order. */
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function canonicalDetails(details) {
  return (details || []).map(canonical).sort();
}

async function pageText(page) {
  try {
    const t = (await page.locator('body').innerText({ timeout: 2000 })).replace(/\s+/g, ' ').trim();
    return t.length > 300 ? `${t.slice(0, 300)}…` : t;
  } catch {
    return '<no page text>';
  }
}

async function saveScreenshot(page, name) {
  if (!ARTIFACT_DIR) return null;
  fs.mkdirSync(ARTIFACT_DIR, { recursive: true });
  const file = path.join(ARTIFACT_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const { step, main } = createRunner('e2e-rar-browser');
let context;
let userDataDir;

await main(async () => {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  const state = b64url(crypto.randomBytes(16));
  const nonce = b64url(crypto.randomBytes(16));
  const authorizeUrl = new URL(`${ISSUER}/oauth/authorize`);
  authorizeUrl.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope: 'openid offline_access',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    authorization_details: JSON.stringify(DETAILS),
  }).toString();

  let page;
  await step('launch headless Chromium', async () => {
    if (!fs.existsSync(CHROMIUM_PATH)) {
      throw new Error(`Chromium not found at ${CHROMIUM_PATH} (run scripts/setup, or set CHROMIUM_PATH)`);
    }
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'autional-e2e-rar-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
      viewport: { width: 1000, height: 800 },
    });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    page = context.pages()[0] || (await context.newPage());
    return `${CHROMIUM_PATH} ${context.browser()?.version() ?? ''}`.trim();
  });

  let callback;
  try {
    await step('authorization request with authorization_details: sign in and reach the consent page', async () => {
      const resp = await page.goto(authorizeUrl.href, { waitUntil: 'domcontentloaded' });
      assert.ok(resp, 'no response for the authorize URL');
      const here = new URL(page.url());
      assert.equal(here.pathname, '/login', `expected the sign-in page at /login, browser is at ${page.url()} (HTTP ${resp.status()}): ${await pageText(page)}`);
      await page.locator('input[name=username]').fill(USERNAME);
      await page.locator('input[name=password]').fill(PASSWORD);
      const consentReached = page.waitForURL((u) => u.origin === ISSUER_ORIGIN && u.pathname === '/oauth/authorize', {
        waitUntil: 'domcontentloaded',
      });
      consentReached.catch(() => {});
      await page.locator('button[type=submit]').click();
      try {
        await consentReached;
      } catch {
        throw new Error(`after sign-in the browser did not reach /oauth/authorize; it is at ${page.url()}: ${await pageText(page)}`);
      }
      await page.locator('button[name=approved][value=true]').waitFor({ state: 'visible' });
      return `at ${new URL(page.url()).pathname}`;
    });

    await step('the consent page shows each authorization detail in plain words (visible)', async () => {
      const items = page.locator('ul.details li');
      const texts = (await items.allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());
      const body = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
      for (const words of IN_WORDS) {
        assert.ok(
          texts.includes(words) || body.includes(words),
          `consent page does not show "${words}"; detail items: ${JSON.stringify(texts)}; page: ${body.slice(0, 500)}`,
        );
        await page.getByText(words, { exact: false }).first().waitFor({ state: 'visible' });
      }
      const shot = await saveScreenshot(page, 'consent-rar.png');
      return `${JSON.stringify(texts)}${shot ? `; screenshot ${shot}` : ''}`;
    });

    await step('click approve; redirect to the client with code, state, iss', async () => {
      const isCallback = (u) => u.startsWith(REDIRECT_URI);
      await page.route((u) => isCallback(u.href), (route) => route.fulfill({ status: 200, contentType: 'text/plain', body: 'ok' }));
      const request = page.waitForRequest((r) => isCallback(r.url()), { timeout: ACTION_TIMEOUT_MS });
      request.catch(() => {});
      await page.locator('button[name=approved][value=true]').click();
      try {
        callback = new URL((await request).url());
      } catch {
        throw new Error(`no navigation to ${REDIRECT_URI} after approving; browser is at ${page.url()}: ${await pageText(page)}`);
      }
      const p = callback.searchParams;
      assert.equal(p.get('error'), null, `authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
      assert.ok(p.get('code'), 'redirect lacks code');
      assert.equal(p.get('state'), state, 'redirect state does not match');
      assert.equal(p.get('iss'), ISSUER, 'redirect iss does not equal the issuer');
      return `code received, iss=${p.get('iss')}`;
    });
  } catch (err) {
    if (page) await saveScreenshot(page, 'failure-rar.png').catch(() => {});
    throw err;
  } finally {
    await context?.close().catch(() => {});
  }

  await step('exchange the code: the token response and access token carry the authorization_details', async () => {
    const res = await fetch(`${ISSUER}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code'),
        redirect_uri: REDIRECT_URI,
        client_id: CLIENT_ID,
        code_verifier: verifier,
      }).toString(),
      signal: AbortSignal.timeout(15_000),
    });
    if (res.status !== 200) assert.fail(`token endpoint: HTTP ${res.status}: ${await snippet(res)}`);
    const tokens = await res.json();
    assert.ok(Array.isArray(tokens.authorization_details), `token response lacks authorization_details: ${Object.keys(tokens).join(', ')}`);
    assert.deepEqual(canonicalDetails(tokens.authorization_details), canonicalDetails(DETAILS), 'token response authorization_details');
    const at = decodeJwtPayload(tokens.access_token);
    assert.deepEqual(canonicalDetails(at.authorization_details), canonicalDetails(DETAILS), 'access token authorization_details');
    return `authorization_details=${JSON.stringify(tokens.authorization_details)}`;
  });
});

if (context) await context.close().catch(() => {});
if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
