#!/usr/bin/env node
// Interoperability test: DPoP (RFC 9449) between autional and openid-client v6.
// The server must run with AUTIONAL_DPOP__REQUIRE_NONCE=true: every first proof of a
// fresh DPoP handle lacks a nonce, so the library's one-time use_dpop_nonce retry is
// exercised at the token endpoint (400 + DPoP-Nonce) and at userinfo (401 +
// WWW-Authenticate: DPoP error="use_dpop_nonce" + DPoP-Nonce).
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
import { createHash } from 'node:crypto';
import * as client from 'openid-client';
import { createRunner, decodeJwtPayload, normaliseIssuer, requireEnv } from './common.mjs';
import { PageWalker } from './pages.mjs';

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID', 'REDIRECT_URI', 'USERNAME', 'PASSWORD']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID, REDIRECT_URI, USERNAME, PASSWORD } = env;

// ---- request log (through openid-client's customFetch) ------------------------------

/** Every request openid-client made: method, path, decoded DPoP proof, status, headers. */
const log = [];

function decodeProof(jws) {
  if (!jws) return null;
  const [h, p] = jws.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

async function loggingFetch(url, options) {
  const headers = new Headers(options?.headers);
  const entry = {
    method: options?.method ?? 'GET',
    path: new URL(url).pathname,
    proof: decodeProof(headers.get('dpop')),
    authScheme: (headers.get('authorization') || '').split(' ')[0] || null,
  };
  const res = await fetch(url, options);
  entry.status = res.status;
  entry.dpopNonce = res.headers.get('dpop-nonce');
  entry.wwwAuthenticate = res.headers.get('www-authenticate');
  if (res.status >= 400) {
    try {
      entry.error = (await res.clone().json()).error;
    } catch {
      entry.error = '<no JSON body>';
    }
  }
  log.push(entry);
  return res;
}

/** Log entries added while running `fn`. */
async function logged(fn) {
  const start = log.length;
  const result = await fn();
  return { result, entries: log.slice(start) };
}

function show(entries) {
  return entries
    .map((e) => `${e.method} ${e.path} [proof nonce=${e.proof?.payload.nonce ? 'yes' : 'no'}] -> ${e.status}${e.error ? ` ${e.error}` : ''}`)
    .join(', ');
}

/** The exchange was: one proof without nonce refused with use_dpop_nonce, then a retry with the nonce. */
function assertNonceRetry(entries, path, refusedStatus, what) {
  const hits = entries.filter((e) => e.path === path);
  assert.equal(hits.length, 2, `${what}: expected 2 requests to ${path} (use_dpop_nonce, then retry), saw: ${show(entries)}`);
  const [first, second] = hits;
  assert.ok(first.proof, `${what}: first request carried no DPoP proof`);
  assert.equal(first.proof.payload.nonce, undefined, `${what}: first proof already had a nonce`);
  assert.equal(first.status, refusedStatus, `${what}: first response status: ${show(entries)}`);
  assert.ok(first.dpopNonce, `${what}: the use_dpop_nonce response lacks a DPoP-Nonce header`);
  if (refusedStatus === 401) {
    assert.ok(first.wwwAuthenticate, `${what}: 401 without WWW-Authenticate`);
    assert.match(first.wwwAuthenticate, /^DPoP\b/i, `${what}: WWW-Authenticate scheme is not DPoP: ${first.wwwAuthenticate}`);
    assert.match(first.wwwAuthenticate, /error="use_dpop_nonce"/, `${what}: WWW-Authenticate lacks error="use_dpop_nonce": ${first.wwwAuthenticate}`);
  } else {
    assert.equal(first.error, 'use_dpop_nonce', `${what}: first response error`);
  }
  assert.equal(second.proof?.payload.nonce, first.dpopNonce, `${what}: the retry's proof nonce is not the server's DPoP-Nonce`);
  assert.equal(second.status, 200, `${what}: retry status: ${show(entries)}`);
  return `${first.status} ${first.error ?? 'use_dpop_nonce'} (DPoP-Nonce given) -> retry with nonce -> 200`;
}

// ---- keys -----------------------------------------------------------------------

/** RFC 7638 JWK thumbprint (SHA-256, base64url) computed here, independently of the library. */
async function thumbprint(publicKey) {
  const jwk = await crypto.subtle.exportKey('jwk', publicKey);
  const members = {
    EC: ['crv', 'kty', 'x', 'y'],
    RSA: ['e', 'kty', 'n'],
    OKP: ['crv', 'kty', 'x'],
  }[jwk.kty];
  assert.ok(members, `unexpected JWK kty ${jwk.kty}`);
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

async function expectRejected(promise, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected the server to reject the request, but it succeeded`);
  assert.ok(
    err instanceof client.ResponseBodyError,
    `${what}: expected openid-client ResponseBodyError, got ${err?.name}: ${err?.message} (code=${err?.code})`,
  );
  return err;
}

const { step, main } = createRunner('interop-dpop');

await main(async () => {
  let config;
  await step('discovery advertises DPoP algorithms', async () => {
    config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, client.None(), {
      execute: [client.allowInsecureRequests],
      [client.customFetch]: loggingFetch,
    });
    const md = config.serverMetadata();
    assert.equal(md.issuer, ISSUER, 'discovery issuer must equal AUTIONAL_ISSUER');
    const algs = md.dpop_signing_alg_values_supported;
    assert.ok(Array.isArray(algs), `dpop_signing_alg_values_supported missing: ${JSON.stringify(algs)}`);
    for (const alg of ['ES256', 'ES384', 'EdDSA', 'Ed25519', 'RS256', 'PS256']) {
      assert.ok(algs.includes(alg), `dpop_signing_alg_values_supported lacks ${alg}: ${JSON.stringify(algs)}`);
    }
    return `dpop_signing_alg_values_supported=${JSON.stringify(algs)}`;
  });

  await step('GET /oauth/dpop/nonce returns a DPoP-Nonce header', async () => {
    const res = await fetch(`${ISSUER}/oauth/dpop/nonce`, { signal: AbortSignal.timeout(15_000) });
    assert.equal(res.status, 200, `GET /oauth/dpop/nonce: HTTP ${res.status}`);
    const nonce = res.headers.get('dpop-nonce');
    assert.ok(nonce && nonce.length > 0, 'no DPoP-Nonce header');
    return `DPoP-Nonce: ${nonce.slice(0, 12)}…`;
  });

  let keyPair;
  let dpop;
  let jkt;
  await step('randomDPoPKeyPair (ES256) + getDPoPHandle; thumbprints agree', async () => {
    keyPair = await client.randomDPoPKeyPair();
    dpop = client.getDPoPHandle(config, keyPair);
    jkt = await thumbprint(keyPair.publicKey);
    const libJkt = await dpop.calculateThumbprint();
    assert.equal(libJkt, jkt, 'openid-client and RFC 7638 computed here disagree on the thumbprint');
    return `jkt=${jkt}`;
  });

  const walker = new PageWalker({ issuer: ISSUER, redirectUri: REDIRECT_URI, username: USERNAME, password: PASSWORD });

  /** A fresh authorization URL (PKCE S256, state, nonce, prompt=consent). */
  async function authorizationRequest() {
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid profile offline_access',
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      prompt: 'consent',
    });
    return { url, codeVerifier, state, nonce };
  }

  const first = await authorizationRequest();
  let callbackUrl;
  await step('code flow through the pages (sign-in, consent, redirect with code)', async () => {
    const loginUrl = await walker.startWithoutSession(first.url);
    const back = await walker.signIn(loginUrl);
    const consent = await walker.openConsent(back);
    callbackUrl = await walker.decide(consent, true);
    const p = callbackUrl.searchParams;
    assert.equal(p.get('error'), null, `authorization error: ${p.get('error')} ${p.get('error_description') ?? ''}`);
    assert.ok(p.get('code'), 'redirect lacks code');
    assert.equal(p.get('state'), first.state, 'redirect state does not match');
    assert.equal(p.get('iss'), ISSUER, 'redirect iss does not equal the issuer');
    return `code received, iss=${p.get('iss')}`;
  });

  let tokens;
  let sub;
  await step('authorizationCodeGrant with DPoP: use_dpop_nonce, automatic retry, DPoP-bound token', async () => {
    const { result, entries } = await logged(() =>
      client.authorizationCodeGrant(
        config,
        callbackUrl,
        { pkceCodeVerifier: first.codeVerifier, expectedState: first.state, expectedNonce: first.nonce, idTokenExpected: true },
        undefined,
        { DPoP: dpop },
      ),
    );
    tokens = result;
    const retry = assertNonceRetry(entries, '/oauth/token', 400, 'code exchange');
    assert.ok(entries.at(-1).dpopNonce, 'the successful token response lacks a DPoP-Nonce header');
    assert.equal(String(tokens.token_type).toLowerCase(), 'dpop', `token_type must be DPoP, got ${tokens.token_type}`);
    assert.equal(tokens.dpop_access_token_bound, true, `dpop_access_token_bound must be true, got ${tokens.dpop_access_token_bound}`);
    assert.equal(tokens.dpop_signing_alg, 'ES256', `dpop_signing_alg must be ES256, got ${tokens.dpop_signing_alg}`);
    const at = decodeJwtPayload(tokens.access_token);
    assert.equal(at.cnf?.jkt, jkt, `access token cnf.jkt ${at.cnf?.jkt} is not the key's thumbprint ${jkt}`);
    assert.ok(typeof tokens.refresh_token === 'string', 'no refresh_token (offline_access was requested)');
    sub = tokens.claims()?.sub;
    assert.ok(sub, 'no ID token sub');
    return `${retry}; token_type=${tokens.token_type} cnf.jkt matches`;
  });

  let refreshed;
  await step('refreshTokenGrant with the same DPoP key rotates and stays bound', async () => {
    const { result, entries } = await logged(() =>
      client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: dpop }),
    );
    refreshed = result;
    const hits = entries.filter((e) => e.path === '/oauth/token');
    assert.ok(hits.every((e) => e.proof), 'a refresh request went out without a DPoP proof');
    assert.equal(hits.at(-1).status, 200, `refresh: ${show(entries)}`);
    assert.equal(String(refreshed.token_type).toLowerCase(), 'dpop', `token_type must be DPoP, got ${refreshed.token_type}`);
    assert.equal(refreshed.dpop_access_token_bound, true, 'refreshed: dpop_access_token_bound must be true');
    assert.equal(decodeJwtPayload(refreshed.access_token).cnf?.jkt, jkt, 'refreshed access token cnf.jkt differs from the key');
    assert.ok(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token was not rotated');
    return `requests: ${show(entries)}`;
  });

  await step('fetchUserInfo with the DPoP handle (Authorization: DPoP, proof with ath)', async () => {
    const { result, entries } = await logged(() => client.fetchUserInfo(config, refreshed.access_token, sub, { DPoP: dpop }));
    assert.equal(result.sub, sub, 'userinfo sub differs from the ID token sub');
    const last = entries.at(-1);
    assert.equal(last.path, '/oauth/userinfo');
    assert.equal(last.status, 200);
    assert.equal(last.authScheme, 'DPoP', `userinfo Authorization scheme was ${last.authScheme}`);
    const ath = createHash('sha256').update(refreshed.access_token).digest('base64url');
    assert.equal(last.proof?.payload.ath, ath, 'userinfo proof ath is not the access token hash');
    return `sub=${result.sub}; requests: ${show(entries)}`;
  });

  await step('fetchUserInfo with a fresh handle for the same key: 401 use_dpop_nonce, retry succeeds', async () => {
    const fresh = client.getDPoPHandle(config, keyPair);
    const { result, entries } = await logged(() => client.fetchUserInfo(config, refreshed.access_token, sub, { DPoP: fresh }));
    assert.equal(result.sub, sub);
    return assertNonceRetry(entries, '/oauth/userinfo', 401, 'userinfo');
  });

  await step('the DPoP-bound access token is refused as a Bearer token', async () => {
    const res = await fetch(`${ISSUER}/oauth/userinfo`, {
      headers: { authorization: `Bearer ${refreshed.access_token}` },
      signal: AbortSignal.timeout(15_000),
    });
    assert.equal(res.status, 401, `Bearer use of a DPoP-bound token: expected 401, got ${res.status}`);
    return `401 WWW-Authenticate: ${res.headers.get('www-authenticate')}`;
  });

  let currentRt = refreshed.refresh_token;
  await step('refresh with a DIFFERENT DPoP key fails with invalid_grant', async () => {
    const otherKey = await client.randomDPoPKeyPair();
    const other = client.getDPoPHandle(config, otherKey);
    const { entries, result: err } = await logged(() =>
      expectRejected(client.refreshTokenGrant(config, currentRt, undefined, { DPoP: other }), 'refresh with another key'),
    );
    assert.equal(err.error, 'invalid_grant', `expected error=invalid_grant, got ${err.error} (HTTP ${err.status}): ${err.error_description}`);
    return `HTTP ${err.status} error=${err.error} (${err.error_description}); requests: ${show(entries)}`;
  });

  await step('refresh without any DPoP proof is refused', async () => {
    const err = await expectRejected(client.refreshTokenGrant(config, currentRt), 'refresh without DPoP');
    assert.ok(
      ['invalid_grant', 'invalid_dpop_proof'].includes(err.error),
      `expected invalid_grant or invalid_dpop_proof, got ${err.error} (HTTP ${err.status})`,
    );
    return `HTTP ${err.status} error=${err.error} (${err.error_description})`;
  });

  await step('the first key still refreshes afterwards (the family was not revoked)', async () => {
    const again = await client.refreshTokenGrant(config, currentRt, undefined, { DPoP: dpop });
    assert.equal(String(again.token_type).toLowerCase(), 'dpop');
    assert.equal(decodeJwtPayload(again.access_token).cnf?.jkt, jkt, 'cnf.jkt changed');
    assert.ok(again.refresh_token && again.refresh_token !== currentRt, 'refresh token was not rotated');
    currentRt = again.refresh_token;
    const info = await client.fetchUserInfo(config, again.access_token, sub, { DPoP: dpop });
    assert.equal(info.sub, sub);
    return 'refresh and userinfo with the first key work';
  });

  // Every other advertised algorithm, through the same library: code exchange, cnf.jkt, userinfo.
  // openid-client names Ed25519 keys' proofs "Ed25519" (RFC 9864), which the server accepts
  // besides the older "EdDSA" (that run relabels the header via modifyAssertion).
  for (const alg of ['ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519']) {
    await step(`${alg} DPoP key: code exchange (with nonce retry), cnf.jkt, userinfo`, async () => {
      const kp = await client.randomDPoPKeyPair(alg === 'Ed25519' ? 'EdDSA' : alg);
      const options = alg === 'EdDSA' ? { [client.modifyAssertion]: (header) => { header.alg = 'EdDSA'; } } : undefined;
      const handle = client.getDPoPHandle(config, kp, options);
      const req = await authorizationRequest();
      const consent = await walker.openConsent(req.url);
      const cb = await walker.decide(consent, true);
      assert.ok(cb.searchParams.get('code'), `no code: ${cb.search}`);
      const { result: t, entries } = await logged(() =>
        client.authorizationCodeGrant(
          config,
          cb,
          { pkceCodeVerifier: req.codeVerifier, expectedState: req.state, expectedNonce: req.nonce, idTokenExpected: true },
          undefined,
          { DPoP: handle },
        ),
      );
      assertNonceRetry(entries, '/oauth/token', 400, `${alg} code exchange`);
      assert.equal(entries.at(-1).proof.header.alg, alg, `proof header alg is ${entries.at(-1).proof.header.alg}`);
      assert.equal(String(t.token_type).toLowerCase(), 'dpop', `${alg}: token_type ${t.token_type}`);
      assert.equal(t.dpop_signing_alg, alg, `${alg}: dpop_signing_alg is ${t.dpop_signing_alg}`);
      const expected = await thumbprint(kp.publicKey);
      assert.equal(decodeJwtPayload(t.access_token).cnf?.jkt, expected, `${alg}: cnf.jkt is not the key's thumbprint`);
      const info = await client.fetchUserInfo(config, t.access_token, sub, { DPoP: handle });
      assert.equal(info.sub, sub);
      return `dpop_signing_alg=${t.dpop_signing_alg}, cnf.jkt matches, userinfo ok`;
    });
  }

});
