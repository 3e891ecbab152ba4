#!/usr/bin/env node
// client_credentials (RFC 6749 §4.4) with private_key_jwt client authentication (RFC 7523,
// OIDC Core §9) through openid-client 6, plus hand-made assertions signed with node:crypto.
//
// Two commands, because the script cannot register clients itself:
//   node client-credentials-pkjwt.mjs keygen DIR
//       makes an ES256 key pair: DIR/private.jwk.json (kept here) and DIR/jwks.json (the
//       public JWK Set the test registers with `autional client create --jwks DIR/jwks.json`)
//   node client-credentials-pkjwt.mjs run DIR
//       the checks below, as client CLIENT_ID (registered with the public keys, grant type
//       client_credentials, scope api.read)
//
// Checks: discovery advertises private_key_jwt; clientCredentialsGrant returns an access
// token (a valid RFC 9068 JWT with client_id and scope; no refresh or ID token); a scope
// beyond the client's is invalid_scope; a hand-made assertion works once and its replay is
// 401 invalid_client (so is the replay of the library's own assertion); `aud` = the token
// endpoint URL works; `exp` 10 minutes ahead is 401 invalid_client; an unregistered key is
// 401 invalid_client.
//
// Environment (run): AUTIONAL_ISSUER, CLIENT_ID; JS_TEST_TIMEOUT_MS, JS_TEST_VERBOSE optional.
// Exit code 0 = pass; non-zero with a "FAIL ..." line on stderr = failure.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as oauth from 'oauth4webapi';
import * as client from 'openid-client';
import { createRunner, decodeJwtPayload, normaliseIssuer, requireEnv } from './common.mjs';

const HTTP_TIMEOUT_MS = 15_000;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const [command, dir] = process.argv.slice(2);
if (!['keygen', 'run'].includes(command) || !dir) {
  console.error('usage: node client-credentials-pkjwt.mjs keygen|run DIR');
  process.exit(2);
}
const PRIVATE_FILE = path.join(dir, 'private.jwk.json');
const JWKS_FILE = path.join(dir, 'jwks.json');

/** RFC 7638 thumbprint of an EC public JWK. */
function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return crypto.createHash('sha256').update(canonical).digest('base64url');
}

/** A fresh P-256 key pair as { privateJwk, publicJwk } (both carrying kid, alg, use). */
function newKeyPair() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pub = publicKey.export({ format: 'jwk' });
  const meta = { kid: thumbprint(pub), alg: 'ES256', use: 'sig' };
  return { privateJwk: { ...privateKey.export({ format: 'jwk' }), ...meta }, publicJwk: { ...pub, ...meta } };
}

if (command === 'keygen') {
  fs.mkdirSync(dir, { recursive: true });
  const { privateJwk, publicJwk } = newKeyPair();
  fs.writeFileSync(PRIVATE_FILE, JSON.stringify(privateJwk), { mode: 0o600 });
  fs.writeFileSync(JWKS_FILE, JSON.stringify({ keys: [publicJwk] }, null, 2));
  console.log(`keygen: ES256 key ${publicJwk.kid}; public JWK Set at ${JWKS_FILE}`);
  process.exit(0);
}

const env = requireEnv(['AUTIONAL_ISSUER', 'CLIENT_ID']);
const ISSUER = normaliseIssuer(env.AUTIONAL_ISSUER);
const { CLIENT_ID } = env;

/** A compact ES256 JWS over `payload`, signed with node:crypto (no JOSE library). */
function signEs256(privateJwk, payload) {
  const header = { alg: 'ES256', typ: 'JWT', kid: privateJwk.kid };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const key = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' });
  // JWS wants the raw r||s signature (RFC 7518 §3.4), not DER.
  const sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

function assertionClaims(overrides = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: CLIENT_ID,
    sub: CLIENT_ID,
    aud: ISSUER,
    jti: crypto.randomUUID(),
    iat: now,
    exp: now + 60,
    ...overrides,
  };
}

/** POST /oauth/token grant_type=client_credentials with a client assertion, by hand. */
async function tokenWithAssertion(tokenEndpoint, assertion, scope = 'api.read') {
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      scope,
      client_id: CLIENT_ID,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion,
    }).toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = { unparsable: text.slice(0, 300) };
  }
  return { status: res.status, body, text: text.slice(0, 300), wwwAuthenticate: res.headers.get('www-authenticate') };
}

function expectInvalidClient(r, what) {
  assert.equal(r.status, 401, `${what}: expected HTTP 401 invalid_client, got ${r.status} ${r.text}`);
  assert.equal(r.body.error, 'invalid_client', `${what}: expected error=invalid_client, got ${r.text}`);
}

/** The library's call must fail with the given OAuth error; returns the error. */
async function expectLibraryError(promise, status, error, what) {
  let err;
  try {
    const res = await promise;
    assert.fail(`${what}: expected ${status} ${error}, but the server issued a token (scope ${res.scope})`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(
    err instanceof client.ResponseBodyError,
    `${what}: expected openid-client ResponseBodyError, got ${err?.name}: ${err?.message} (code=${err?.code})`,
  );
  assert.equal(err.error, error, `${what}: expected error=${error}, got ${err.error}: ${err.error_description ?? ''}`);
  assert.equal(err.status, status, `${what}: expected HTTP ${status}, got ${err.status}`);
  return err;
}

const { step, main } = createRunner('client-credentials-pkjwt');

await main(async () => {
  const privateJwk = JSON.parse(fs.readFileSync(PRIVATE_FILE, 'utf8'));
  const { kid, alg, use, ...raw } = privateJwk; // WebCrypto imports the bare key
  const privateKey = await crypto.subtle.importKey('jwk', raw, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);

  /** Assertions the library sent, captured by its custom fetch. */
  const sentAssertions = [];
  const recordingFetch = async (url, options) => {
    const body = options?.body instanceof URLSearchParams ? options.body : new URLSearchParams(String(options?.body ?? ''));
    const a = body.get('client_assertion');
    if (a) sentAssertions.push(a);
    return fetch(url, options);
  };

  /** A configuration whose PrivateKeyJwt assertions pass through `modify(header, payload)`. */
  async function configure(modify) {
    const auth = client.PrivateKeyJwt({ key: privateKey, kid }, modify ? { [client.modifyAssertion]: modify } : undefined);
    const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined, auth, {
      execute: [client.allowInsecureRequests],
    });
    config[client.customFetch] = recordingFetch;
    return config;
  }

  let config;
  let md;
  await step('discovery advertises private_key_jwt and client_credentials', async () => {
    config = await configure();
    md = config.serverMetadata();
    assert.equal(md.issuer, ISSUER, 'discovery issuer');
    assert.ok(
      md.token_endpoint_auth_methods_supported?.includes('private_key_jwt'),
      `token_endpoint_auth_methods_supported lacks private_key_jwt: ${JSON.stringify(md.token_endpoint_auth_methods_supported)}`,
    );
    assert.ok(md.grant_types_supported?.includes('client_credentials'), `grant_types_supported lacks client_credentials: ${JSON.stringify(md.grant_types_supported)}`);
    if (md.token_endpoint_auth_signing_alg_values_supported !== undefined) {
      assert.ok(md.token_endpoint_auth_signing_alg_values_supported.includes('ES256'), 'token_endpoint_auth_signing_alg_values_supported lacks ES256');
    }
    return `token_endpoint=${md.token_endpoint} auth methods=[${md.token_endpoint_auth_methods_supported.join(', ')}]`;
  });

  let tokens;
  await step('clientCredentialsGrant with PrivateKeyJwt: an access token only', async () => {
    tokens = await client.clientCredentialsGrant(config, { scope: 'api.read' });
    assert.match(String(tokens.token_type), /^bearer$/i, `token_type must be Bearer, got ${tokens.token_type}`);
    assert.ok(tokens.access_token, 'no access_token');
    assert.equal(tokens.refresh_token, undefined, 'client_credentials must not issue a refresh token');
    assert.equal(tokens.id_token, undefined, 'client_credentials must not issue an ID token');
    assert.equal(tokens.scope, 'api.read', `scope: ${tokens.scope}`);
    assert.ok(tokens.expires_in > 0, `expires_in: ${tokens.expires_in}`);
    const sent = decodeJwtPayload(sentAssertions.at(-1));
    assert.equal(sent.iss, CLIENT_ID, "the library's assertion iss");
    return `expires_in=${tokens.expires_in}; the library's assertion had aud=${sent.aud} exp-iat=${sent.exp - sent.iat}s`;
  });

  await step('the access token is a valid RFC 9068 JWT with client_id and scope', async () => {
    const claims = decodeJwtPayload(tokens.access_token);
    assert.equal(claims.client_id, CLIENT_ID, `client_id claim: ${claims.client_id}`);
    assert.equal(claims.scope, 'api.read', `scope claim: ${claims.scope}`);
    assert.equal(claims.sub, CLIENT_ID, `sub of a client_credentials token should be the client: ${claims.sub}`);
    assert.equal(claims.iss, ISSUER, 'iss claim');
    // oauth4webapi's resource-server side: typ at+jwt, signature against jwks_uri, claims.
    const request = new Request(`${ISSUER}/api`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    const validated = await oauth.validateJwtAccessToken(md, request, claims.aud, {
      [oauth.allowInsecureRequests]: true,
    });
    assert.equal(validated.client_id, CLIENT_ID, 'validated client_id');
    return `sub=${claims.sub} client_id=${claims.client_id} scope=${claims.scope} aud=${JSON.stringify(claims.aud)} (validateJwtAccessToken ok)`;
  });

  await step('a scope beyond the client (api.write) is invalid_scope', async () => {
    const err = await expectLibraryError(client.clientCredentialsGrant(config, { scope: 'api.write' }), 400, 'invalid_scope', 'scope api.write');
    return `HTTP ${err.status} error=${err.error}`;
  });

  await step("replaying the library's own assertion is 401 invalid_client", async () => {
    const r = await tokenWithAssertion(md.token_endpoint, sentAssertions[0]);
    expectInvalidClient(r, "replay of the library's assertion");
    return `HTTP ${r.status} error=${r.body.error}`;
  });

  await step('a hand-made assertion (node:crypto ES256) works once; its replay is 401 invalid_client', async () => {
    const assertion = signEs256(privateJwk, assertionClaims());
    const first = await tokenWithAssertion(md.token_endpoint, assertion);
    assert.equal(first.status, 200, `first use: expected HTTP 200, got ${first.status} ${first.text}`);
    assert.ok(first.body.access_token, 'first use: no access_token');
    assert.equal(first.body.refresh_token, undefined, 'first use: no refresh token expected');
    const second = await tokenWithAssertion(md.token_endpoint, assertion);
    expectInvalidClient(second, 'the same assertion (same jti) again');
    return `200, then HTTP ${second.status} error=${second.body.error}`;
  });

  await step('a new jti with otherwise identical claims works again', async () => {
    const r = await tokenWithAssertion(md.token_endpoint, signEs256(privateJwk, assertionClaims()));
    assert.equal(r.status, 200, `expected HTTP 200, got ${r.status} ${r.text}`);
    return 'HTTP 200';
  });

  await step('aud = the token endpoint URL works (through the library)', async () => {
    const tokenUrl = `${ISSUER}/oauth/token`;
    assert.equal(md.token_endpoint, tokenUrl, 'token_endpoint');
    const cfg = await configure((_header, payload) => {
      payload.aud = tokenUrl;
    });
    const t = await client.clientCredentialsGrant(cfg, { scope: 'api.read' });
    assert.ok(t.access_token, 'no access_token');
    assert.equal(decodeJwtPayload(sentAssertions.at(-1)).aud, tokenUrl, 'the assertion sent had aud = token endpoint');
    return `aud=${tokenUrl}: HTTP 200`;
  });

  await step('aud = the token endpoint URL works (by hand)', async () => {
    const r = await tokenWithAssertion(md.token_endpoint, signEs256(privateJwk, assertionClaims({ aud: md.token_endpoint })));
    assert.equal(r.status, 200, `expected HTTP 200, got ${r.status} ${r.text}`);
    return 'HTTP 200';
  });

  await step('exp 10 minutes ahead is 401 invalid_client (library and by hand)', async () => {
    const cfg = await configure((_header, payload) => {
      payload.exp = payload.iat + 600;
    });
    const err = await expectLibraryError(client.clientCredentialsGrant(cfg, { scope: 'api.read' }), 401, 'invalid_client', 'exp +10 min');
    const now = Math.floor(Date.now() / 1000);
    const r = await tokenWithAssertion(md.token_endpoint, signEs256(privateJwk, assertionClaims({ iat: now, exp: now + 600 })));
    expectInvalidClient(r, 'hand-made assertion with exp +10 min');
    return `HTTP ${err.status} error=${err.error} (${err.error_description ?? ''})`;
  });

  await step('an assertion signed with an unregistered key is 401 invalid_client', async () => {
    const { privateJwk: other } = newKeyPair();
    const r = await tokenWithAssertion(md.token_endpoint, signEs256(other, assertionClaims()));
    expectInvalidClient(r, 'unregistered key');
    // The same kid as the registered key, but the other key's signature.
    const r2 = await tokenWithAssertion(md.token_endpoint, signEs256({ ...other, kid }, assertionClaims()));
    expectInvalidClient(r2, 'registered kid, wrong key');
    return `HTTP ${r.status} error=${r.body.error}`;
  });

  await step('an assertion naming another client (iss/sub ≠ client_id) is 401 invalid_client', async () => {
    const r = await tokenWithAssertion(md.token_endpoint, signEs256(privateJwk, assertionClaims({ iss: 'someone-else' })));
    expectInvalidClient(r, 'iss differs from sub and client_id');
    return `HTTP ${r.status} error=${r.body.error}`;
  });
});
