#!/usr/bin/env node
// Interoperability test: Pushed Authorization Requests (RFC 9126) carrying Rich
// Authorization Requests (RFC 9396) between autional and oauth4webapi v3, with the
// sign-in and consent pages walked by plain fetch; then code exchange, a narrowing
// refresh, a widening refresh (refused) and single use of the request_uri.
//
// Environment:
//   AUTIONAL_ISSUER  issuer and base URL, e.g. http://127.0.0.1:43123
//   CLIENT_ID        a public client created with --require-par
//   REDIRECT_URI     a redirect URI registered for that client (nothing needs to listen)
//   USERNAME, PASSWORD  an existing user's credentials
//   OTHER_CLIENT_ID  optional: another registered client (default pub)
//   JS_TEST_TIMEOUT_MS  optional overall timeout (default 120000)
//   JS_TEST_VERBOSE     optional: print stack traces on failure
//
// Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.

import assert from 'node:assert/strict';
import * as oauth from 'oauth4webapi';
import { createRunner, decodeJwtPayload, normaliseIssuer, requireEnv, snippet } from './common.mjs';
import { PageWalker, visibleText } from './pages.mjs';

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID', 'REDIRECT_URI', 'USERNAME', 'PASSWORD']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID, REDIRECT_URI, USERNAME, PASSWORD } = env;
const INSECURE = { [oauth.allowInsecureRequests]: true };
// Another registered client (the harness's `pub`), for the wrong-client request_uri check.
const OTHER_CLIENT_ID = process.env.OTHER_CLIENT_ID || 'pub';

const DETAILS = [
  {
    type: 'account_information',
    actions: ['list_accounts', 'read_balances'],
    locations: ['https://example.com/accounts'],
    identifier: 'account-12345',
  },
];
const DETAILS_IN_WORDS = 'account information: list accounts, read balances for account-12345 at https://example.com/accounts';

/** Order-insensitive view of a details array for comparisons. */
function canonicalDetails(details) {
  return (details || [])
    .map((d) => {
      const out = {};
      for (const k of Object.keys(d).sort()) out[k] = Array.isArray(d[k]) ? [...d[k]].sort() : d[k];
      return JSON.stringify(out);
    })
    .sort();
}

function assertSameDetails(actual, expected, what) {
  assert.ok(Array.isArray(actual), `${what}: authorization_details missing or not an array: ${JSON.stringify(actual)}`);
  assert.deepEqual(canonicalDetails(actual), canonicalDetails(expected), `${what}: authorization_details ${JSON.stringify(actual)}`);
}

async function expectOAuthError(promise, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected the server to refuse, but it succeeded`);
  assert.ok(
    err instanceof oauth.ResponseBodyError,
    `${what}: expected oauth4webapi ResponseBodyError, got ${err?.name}: ${err?.message} (code=${err?.code})`,
  );
  return err;
}

const { step, main } = createRunner('interop-par-rar');

await main(async () => {
  const issuer = new URL(ISSUER);
  const c = { client_id: CLIENT_ID, token_endpoint_auth_method: 'none' };
  const clientAuth = oauth.None();
  const walker = new PageWalker({ issuer: ISSUER, redirectUri: REDIRECT_URI, username: USERNAME, password: PASSWORD });

  let as;
  await step('discovery (discoveryRequest + processDiscoveryResponse) advertises PAR and RAR', async () => {
    const res = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...INSECURE });
    as = await oauth.processDiscoveryResponse(issuer, res);
    assert.equal(as.issuer, ISSUER);
    assert.equal(
      as.pushed_authorization_request_endpoint,
      `${ISSUER}/oauth/pushed-authorization`,
      `pushed_authorization_request_endpoint is ${as.pushed_authorization_request_endpoint}`,
    );
    const types = as.authorization_details_types_supported;
    assert.ok(Array.isArray(types), `authorization_details_types_supported missing: ${JSON.stringify(types)}`);
    for (const t of ['account_information', 'payment_initiation']) {
      assert.ok(types.includes(t), `authorization_details_types_supported lacks ${t}: ${JSON.stringify(types)}`);
    }
    return `PAR endpoint ${as.pushed_authorization_request_endpoint}, types ${JSON.stringify(types)}`;
  });

  /** Authorization request parameters (PKCE S256, state, nonce) plus `extra`. */
  async function requestParameters(extra = {}) {
    const codeVerifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const nonce = oauth.generateRandomNonce();
    const params = new URLSearchParams({
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'openid offline_access',
      code_challenge: await oauth.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra,
    });
    return { params, codeVerifier, state, nonce };
  }

  function authorizeWithRequestUri(requestUri, clientId = CLIENT_ID) {
    const url = new URL(as.authorization_endpoint);
    url.searchParams.set('client_id', clientId);
    url.searchParams.set('request_uri', requestUri);
    return url;
  }

  await step('this client must use PAR: a plain authorization request is refused', async () => {
    const { params } = await requestParameters();
    const url = new URL(as.authorization_endpoint);
    for (const [k, v] of params) url.searchParams.set(k, v);
    url.searchParams.set('client_id', CLIENT_ID);
    const res = await walker.http(url);
    const loc = res.headers.get('location');
    assert.ok(res.status === 302 || res.status === 303 || res.status === 400, `expected an error redirect or page, got HTTP ${res.status}`);
    if (loc) {
      const to = new URL(loc, url);
      assert.ok(to.href.startsWith(REDIRECT_URI), `expected an error redirect to the client, got ${to.href}`);
      assert.equal(to.searchParams.get('error'), 'invalid_request', `expected error=invalid_request, got ${to.search}`);
      assert.equal(to.searchParams.get('code'), null, 'a code was issued without PAR');
      return `HTTP ${res.status} -> error=${to.searchParams.get('error')}: ${to.searchParams.get('error_description')}`;
    }
    return `HTTP ${res.status}: ${await snippet(res, 160)}`;
  });

  await step('PAR refuses an authorization_details type the server does not know', async () => {
    const { params } = await requestParameters({ authorization_details: JSON.stringify([{ type: 'crypto_mining' }]) });
    const res = await oauth.pushedAuthorizationRequest(as, c, clientAuth, params, INSECURE);
    const err = await expectOAuthError(oauth.processPushedAuthorizationResponse(as, c, res), 'PAR with unknown type');
    assert.equal(err.status, 400, `expected HTTP 400, got ${err.status}`);
    assert.equal(err.error, 'invalid_authorization_details', `expected invalid_authorization_details, got ${err.error}`);
    return `HTTP ${err.status} error=${err.error}`;
  });

  const req = await requestParameters({ authorization_details: JSON.stringify(DETAILS) });
  let pushed;
  await step('pushedAuthorizationRequest with authorization_details and PKCE: 201 request_uri', async () => {
    const res = await oauth.pushedAuthorizationRequest(as, c, clientAuth, req.params, INSECURE);
    assert.equal(res.status, 201, `PAR: expected HTTP 201, got ${res.status}`);
    pushed = await oauth.processPushedAuthorizationResponse(as, c, res);
    assert.match(pushed.request_uri, /^urn:ietf:params:oauth:request_uri:/, `request_uri ${pushed.request_uri}`);
    assert.equal(pushed.expires_in, 90, `expires_in must be 90, got ${pushed.expires_in}`);
    return `request_uri=${pushed.request_uri.slice(0, 40)}… expires_in=${pushed.expires_in}`;
  });

  const authorizationUrl = authorizeWithRequestUri(pushed.request_uri);
  let consent;
  await step('GET authorize with request_uri: sign in, then the consent page', async () => {
    const loginUrl = await walker.startWithoutSession(authorizationUrl);
    const back = await walker.signIn(loginUrl);
    assert.equal(back.searchParams.get('request_uri'), pushed.request_uri, `sign-in returned to ${back.search}`);
    consent = await walker.openConsent(back);
    return `consent page reached (${back.pathname}?client_id=…&request_uri=…)`;
  });

  await step('the consent page shows the authorization_details in plain words', async () => {
    assert.ok(
      consent.text.includes(DETAILS_IN_WORDS),
      `consent page text does not contain "${DETAILS_IN_WORDS}"; details list: ${JSON.stringify(consent.details)}; text: ${consent.text.slice(0, 600)}`,
    );
    assert.ok(!consent.text.includes('list_accounts'), 'consent page shows the raw action name list_accounts');
    return `"${consent.details.join(' | ')}"`;
  });

  let callbackParams;
  await step('approve; validateAuthResponse (state, iss)', async () => {
    const callback = await walker.decide(consent, true);
    callbackParams = oauth.validateAuthResponse(as, c, callback, req.state);
    assert.ok(callbackParams.get('code'), 'no code');
    return `code received, iss=${callback.searchParams.get('iss')}`;
  });

  let tokens;
  await step('authorizationCodeGrantRequest + processAuthorizationCodeResponse: authorization_details granted', async () => {
    const res = await oauth.authorizationCodeGrantRequest(as, c, clientAuth, callbackParams, REDIRECT_URI, req.codeVerifier, INSECURE);
    tokens = await oauth.processAuthorizationCodeResponse(as, c, res, { expectedNonce: req.nonce, requireIdToken: true });
    assert.equal(tokens.token_type, 'bearer', `token_type ${tokens.token_type}`);
    assertSameDetails(tokens.authorization_details, DETAILS, 'token response');
    assertSameDetails(decodeJwtPayload(tokens.access_token).authorization_details, DETAILS, 'access token');
    assert.ok(tokens.refresh_token, 'no refresh_token (offline_access was requested)');
    return `authorization_details=${JSON.stringify(tokens.authorization_details)}`;
  });

  let rt = tokens.refresh_token;
  const NARROWED = [{ ...DETAILS[0], actions: ['read_balances'] }];
  await step('refresh with narrower authorization_details (read_balances only) gets exactly that', async () => {
    const res = await oauth.refreshTokenGrantRequest(as, c, clientAuth, rt, {
      additionalParameters: { authorization_details: JSON.stringify([{ type: 'account_information', actions: ['read_balances'] }]) },
      ...INSECURE,
    });
    const r = await oauth.processRefreshTokenResponse(as, c, res);
    assertSameDetails(r.authorization_details, NARROWED, 'narrowed refresh response');
    assertSameDetails(decodeJwtPayload(r.access_token).authorization_details, NARROWED, 'narrowed access token');
    assert.ok(r.refresh_token && r.refresh_token !== rt, 'refresh token was not rotated');
    rt = r.refresh_token;
    return `authorization_details=${JSON.stringify(r.authorization_details)}`;
  });

  await step('refresh with wider authorization_details (actions ["transfer"]) at /oauth/token: 400 invalid_authorization_details', async () => {
    const res = await oauth.refreshTokenGrantRequest(as, c, clientAuth, rt, {
      additionalParameters: { authorization_details: JSON.stringify([{ type: 'account_information', actions: ['transfer'] }]) },
      ...INSECURE,
    });
    const err = await expectOAuthError(oauth.processRefreshTokenResponse(as, c, res), 'widening refresh');
    assert.equal(err.status, 400, `expected HTTP 400, got ${err.status}`);
    assert.equal(err.error, 'invalid_authorization_details', `expected invalid_authorization_details, got ${err.error}`);
    return `HTTP ${err.status} error=${err.error} (${err.error_description})`;
  });

  await step('the same widening at POST /oauth/refresh (JSON): 400 invalid_authorization_details', async () => {
    const res = await fetch(`${ISSUER}/oauth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({
        refresh_token: rt,
        client_id: CLIENT_ID,
        authorization_details: [{ type: 'account_information', actions: ['transfer'] }],
      }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = await res.json().catch(() => ({}));
    assert.equal(res.status, 400, `expected HTTP 400, got ${res.status}: ${JSON.stringify(body)}`);
    assert.equal(body.error, 'invalid_authorization_details', `expected invalid_authorization_details: ${JSON.stringify(body)}`);
    return `HTTP ${res.status} error=${body.error}`;
  });

  await step('after the refusals the refresh token still works; omitting authorization_details gives the full grant', async () => {
    const res = await oauth.refreshTokenGrantRequest(as, c, clientAuth, rt, INSECURE);
    const r = await oauth.processRefreshTokenResponse(as, c, res);
    assertSameDetails(r.authorization_details, DETAILS, 'refresh without authorization_details');
    rt = r.refresh_token;
    return `authorization_details=${JSON.stringify(r.authorization_details)}`;
  });

  await step('reusing the request_uri for a second authorization: HTTP 400 page with invalid_request_uri', async () => {
    const res = await walker.http(authorizeWithRequestUri(pushed.request_uri));
    const loc = res.headers.get('location');
    const body = await res.text();
    assert.equal(res.status, 400, `expected HTTP 400, got ${res.status}${loc ? ` (Location: ${loc})` : ''}: ${visibleText(body).slice(0, 300)}`);
    assert.match(res.headers.get('content-type') || '', /text\/html/i, 'the error is not an HTML page');
    assert.ok(body.includes('invalid_request_uri'), `error page lacks invalid_request_uri: ${visibleText(body).slice(0, 300)}`);
    return visibleText(body).slice(0, 160);
  });

  await step('a request_uri pushed by this client cannot be used with another client_id', async () => {
    const other = await requestParameters({ authorization_details: JSON.stringify(DETAILS) });
    const p = await oauth.processPushedAuthorizationResponse(
      as,
      c,
      await oauth.pushedAuthorizationRequest(as, c, clientAuth, other.params, INSECURE),
    );
    const res = await walker.http(authorizeWithRequestUri(p.request_uri, OTHER_CLIENT_ID));
    const body = await res.text();
    assert.equal(res.status, 400, `expected HTTP 400, got ${res.status} (Location: ${res.headers.get('location')})`);
    assert.ok(body.includes('invalid_request_uri'), `error page lacks invalid_request_uri: ${visibleText(body).slice(0, 300)}`);
    return 'HTTP 400 invalid_request_uri';
  });
});
