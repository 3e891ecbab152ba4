// The comparison peer of the refresh benchmark: node-oidc-provider 9.x configured as close to
// autional as it goes (see README.md beside this file).
//
// Env: PORT (required), PEER_ADAPTER=memory|sqlite (default sqlite),
//      PEER_SQLITE_PATH (default ./peer.db), PEER_ISSUER (default http://127.0.0.1:PORT),
//      PEER_DPOP_NONCE=1 to require DPoP nonces (off by default, like autional's).
// Prints `listening on http://127.0.0.1:PORT` on stdout when ready; nothing else goes to stdout.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

import {
  MemoryAdapter, SqliteAdapter, openSqlite, sweepMemory, sweepSqlite,
} from './adapters.mjs';

// node-oidc-provider prints its notices with console.info (stdout): keep stdout for the
// readiness line, and never die of EPIPE if the load generator stops reading it.
console.info = console.error;
process.stdout.on('error', () => {});

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('PORT must be set');
  process.exit(2);
}
const issuer = process.env.PEER_ISSUER || `http://127.0.0.1:${port}`;
const adapterName = process.env.PEER_ADAPTER || 'sqlite';

let Adapter;
let sweep;
if (adapterName === 'memory') {
  Adapter = MemoryAdapter;
  sweep = sweepMemory;
} else if (adapterName === 'sqlite') {
  openSqlite(process.env.PEER_SQLITE_PATH || 'peer.db');
  Adapter = SqliteAdapter;
  sweep = sweepSqlite;
} else {
  console.error(`PEER_ADAPTER=${adapterName}: use memory or sqlite`);
  process.exit(2);
}
setInterval(sweep, 60_000).unref();

// The bench's client and account (same names as autional's bench setup).
const CLIENT_ID = 'bench';
const REDIRECT_URI = 'http://127.0.0.1:9/cb';
const ACCOUNT_ID = 'bench';
// Like autional, the access token's audience is the issuer and it carries the granted scope.
const RESOURCE = issuer;
const RESOURCE_SCOPE = 'openid offline_access';

// One ES256 signing key, made at start-up (autional signs with ES256 too).
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = {
  ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', alg: 'ES256', use: 'sig',
};

const provider = new Provider(issuer, {
  adapter: Adapter,
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  clients: [{
    client_id: CLIENT_ID,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    id_token_signed_response_alg: 'ES256',
  }],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  scopes: ['openid', 'offline_access'],
  claims: { openid: ['sub'] },
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  // Public clients must use PKCE with S256 (node-oidc-provider's default, and autional's rule).
  pkce: { required: () => true },
  // A refresh token for grants with offline_access (the default, stated for clarity).
  issueRefreshToken: async (_ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && code.scopes.has('offline_access'),
  // Rotate on every refresh. Presenting a rotated (consumed) token again makes the refresh
  // handler destroy it and revoke the whole grant (all its tokens and the Grant itself).
  rotateRefreshToken: () => true,
  // autional's lifetimes: access token 15 min, ID token 1 h, code 60 s, refresh token 14 days
  // idle (each rotation starts a new 14 days), the grant 90 days absolute.
  ttl: {
    AccessToken: 15 * 60,
    AuthorizationCode: 60,
    IdToken: 60 * 60,
    RefreshToken: 14 * 24 * 60 * 60,
    Grant: 90 * 24 * 60 * 60,
    Session: 14 * 24 * 60 * 60,
    Interaction: 60 * 60,
  },
  features: {
    devInteractions: { enabled: false },
    // DPoP without server nonces, like autional's default (dpop.require_nonce = false): the
    // proof's iat must be recent, and each jti is accepted once (ReplayDetection, through the
    // adapter). PEER_DPOP_NONCE=1 makes every proof carry a nonce (use_dpop_nonce otherwise).
    dPoP: process.env.PEER_DPOP_NONCE === '1'
      ? { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true }
      : { enabled: true },
    revocation: { enabled: true },
    // JWT access tokens: node-oidc-provider only issues them for a resource server.
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      // Use the granted resource on code exchange and refresh even though `openid` is in scope.
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== RESOURCE) throw new Provider.errors.InvalidTarget();
        return {
          scope: RESOURCE_SCOPE,
          audience: issuer,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 15 * 60,
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

// Error-level logging only (autional runs the bench with AUTIONAL_LOG=error).
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// Minimal interaction handler: signs in the fixed account and grants what was asked, in one
// step, through node-oidc-provider's own API (interactionDetails / Grant / interactionResult).
provider.use(async (ctx, next) => {
  const m = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (!m || ctx.method !== 'GET') return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { params } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: ACCOUNT_ID, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope));
  const resource = params.resource || RESOURCE;
  grant.addResourceScope(resource, RESOURCE_SCOPE);
  const grantId = await grant.save();
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, {
    login: { accountId: ACCOUNT_ID },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

const server = http.createServer(provider.callback());
// Keep idle connections open between levels (autional's server does not time them out).
server.keepAliveTimeout = 10 * 60 * 1000;
server.headersTimeout = 10 * 60 * 1000 + 1000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
});

const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
