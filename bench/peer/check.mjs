// Self-check of the benchmark peer: for each adapter, starts server.mjs, obtains a refresh
// token through the code flow (the same redirects the load generator follows), and checks
// - a refresh rotates the refresh token and returns an ES256 JWT access token (aud = issuer,
//   typ at+jwt) and an ES256 ID token;
// - presenting the rotated token again fails (invalid_grant) and revokes the grant: the
//   token issued by the rotation stops working too;
// - sqlite only: a rotation answered before a SIGKILL survives a restart;
// - DPoP: a code exchange with a proof returns token_type DPoP and binds the public client's
//   refresh token to the key: a refresh without a proof, or with another key's, is
//   invalid_grant (and does not use the token up); a proof by the key refreshes.
// Usage: node bench/peer/check.mjs   (prints `N passed, N failed`)

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const REDIRECT = 'http://127.0.0.1:9/cb';
let passed = 0;
let failed = 0;

function check(name, ok, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok   ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name} ${detail}`);
  }
}

async function start(adapter, dbPath, port) {
  const child = spawn(process.execPath, [path.join(here, 'server.mjs')], {
    env: {
      ...process.env, PORT: String(port), PEER_ADAPTER: adapter, PEER_SQLITE_PATH: dbPath,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('listening on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  return child;
}

function decode(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

// An ES256 DPoP key and its proofs (RFC 9449 §4.2), as the load generator makes them.
function dpopKey() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  return { privateKey, jwk: { kty, crv, x, y } };
}

function dpopProof(key, htu) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${part({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })}.${part({
    jti: crypto.randomBytes(16).toString('base64url'), htm: 'POST', htu, iat: Math.floor(Date.now() / 1000),
  })}`;
  const sig = crypto.sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

const dpopHeaders = (key, htu) => (key ? { DPoP: dpopProof(key, htu) } : {});

async function obtain(base, key) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'bench',
    redirect_uri: REDIRECT,
    scope: 'openid offline_access',
    state: 's',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    // node-oidc-provider drops offline_access unless prompt includes consent (OIDC Core 11).
    prompt: 'consent',
  });
  const jar = new Map();
  let url = `${base}/auth?${q}`;
  let code;
  for (let i = 0; i < 8 && !code; i += 1) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const c of r.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const j = kv.indexOf('=');
      const [k, v] = [kv.slice(0, j), kv.slice(j + 1)];
      if (v) jar.set(k, v); else jar.delete(k);
    }
    if (r.status < 300 || r.status > 399) throw new Error(`${r.status} at ${url}: ${await r.text()}`);
    url = new URL(r.headers.get('location'), url).href;
    if (url.startsWith(REDIRECT)) code = new URL(url).searchParams.get('code');
  }
  const r = await fetch(`${base}/token`, {
    method: 'POST',
    headers: dpopHeaders(key, `${base}/token`),
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT,
      client_id: 'bench',
      code_verifier: verifier,
    }),
  });
  return r.json();
}

async function refresh(base, rt, key) {
  const r = await fetch(`${base}/token`, {
    method: 'POST',
    headers: dpopHeaders(key, `${base}/token`),
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, client_id: 'bench' }),
  });
  return { status: r.status, body: await r.json() };
}

async function run(adapter, port) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peer-check-'));
  const dbPath = path.join(dir, 'peer.db');
  const base = `http://127.0.0.1:${port}`;
  let child = await start(adapter, dbPath, port);
  try {
    const t0 = await obtain(base);
    check(`${adapter}: code flow yields a refresh token`, typeof t0.refresh_token === 'string', JSON.stringify(t0));
    const r1 = await refresh(base, t0.refresh_token);
    check(`${adapter}: refresh 200`, r1.status === 200, JSON.stringify(r1.body));
    check(`${adapter}: refresh rotates`, r1.body.refresh_token && r1.body.refresh_token !== t0.refresh_token);
    const at = decode(r1.body.access_token);
    check(
      `${adapter}: JWT access token (ES256, at+jwt, aud = issuer, scope)`,
      at.header.alg === 'ES256' && at.header.typ === 'at+jwt' && at.payload.aud === base
        && at.payload.scope === 'openid offline_access',
      JSON.stringify(at),
    );
    const idt = r1.body.id_token && decode(r1.body.id_token);
    check(`${adapter}: ID token on refresh (ES256)`, idt?.header.alg === 'ES256' && idt.payload.sub === 'bench', JSON.stringify(idt));
    const r2 = await refresh(base, r1.body.refresh_token);
    check(`${adapter}: second rotation 200`, r2.status === 200, JSON.stringify(r2.body));

    if (adapter === 'sqlite') {
      child.kill('SIGKILL');
      await new Promise((resolve) => { child.on('exit', resolve); });
      child = await start(adapter, dbPath, port);
    }

    const r3 = await refresh(base, r2.body.refresh_token);
    check(`${adapter}: the last answered token still refreshes${adapter === 'sqlite' ? ' after SIGKILL + restart' : ''}`, r3.status === 200, JSON.stringify(r3.body));
    const reuse = await refresh(base, r1.body.refresh_token);
    check(`${adapter}: reuse of a rotated token is invalid_grant`, reuse.status === 400 && reuse.body.error === 'invalid_grant', JSON.stringify(reuse));
    const after = await refresh(base, r3.body.refresh_token);
    check(`${adapter}: reuse revoked the grant (newest token rejected)`, after.status === 400 && after.body.error === 'invalid_grant', JSON.stringify(after));

    // A second grant is untouched by the first one's revocation.
    const t1 = await obtain(base);
    const ok = await refresh(base, t1.refresh_token);
    check(`${adapter}: other grants unaffected`, ok.status === 200, JSON.stringify(ok.body));
    if (adapter === 'sqlite') {
      const { default: Database } = await import('better-sqlite3');
      const db = new Database(dbPath, { readonly: true });
      const grants = db.prepare("SELECT count(*) n FROM oidc WHERE model = 'Grant'").get().n;
      const families = db.prepare("SELECT count(DISTINCT grant_id) n FROM oidc WHERE model = 'RefreshToken'").get().n;
      db.close();
      check('sqlite: the revoked grant and all its refresh tokens are deleted', grants === 1 && families === 1, `grants=${grants} families=${families}`);
    }

    // DPoP: the refresh token is bound to the key of the code exchange's proof.
    const key = dpopKey();
    const d0 = await obtain(base, key);
    check(`${adapter}: DPoP code exchange: token_type DPoP, cnf.jkt`, d0.token_type === 'DPoP' && !!decode(d0.access_token).payload.cnf?.jkt, JSON.stringify(d0));
    const bare = await refresh(base, d0.refresh_token);
    check(`${adapter}: DPoP-bound refresh without a proof is invalid_grant`, bare.status === 400 && bare.body.error === 'invalid_grant', JSON.stringify(bare));
    const other = await refresh(base, d0.refresh_token, dpopKey());
    check(`${adapter}: DPoP-bound refresh with another key is invalid_grant`, other.status === 400 && other.body.error === 'invalid_grant', JSON.stringify(other));
    const d1 = await refresh(base, d0.refresh_token, key);
    check(`${adapter}: DPoP-bound refresh with the key: 200, token_type DPoP, rotates`, d1.status === 200 && d1.body.token_type === 'DPoP' && d1.body.refresh_token !== d0.refresh_token, JSON.stringify(d1));
    const d2 = await refresh(base, d1.body.refresh_token, key);
    check(`${adapter}: DPoP-bound rotation stays bound (second refresh 200 DPoP)`, d2.status === 200 && d2.body.token_type === 'DPoP', JSON.stringify(d2));
  } finally {
    child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

try {
  await run('memory', 18000 + Math.floor(Math.random() * 2000));
  await run('sqlite', 20000 + Math.floor(Math.random() * 2000));
} catch (e) {
  failed += 1;
  console.log(`FAIL ${e.stack}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
