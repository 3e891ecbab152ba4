// Storage adapters for the benchmark peer (node-oidc-provider's adapter interface:
// upsert / find / findByUid / findByUserCode / consume / destroy / revokeByGrantId).
//
// - MemoryAdapter: Maps with a grantId → ids index; every operation is O(1) (revokeByGrantId
//   is O(tokens of that grant)), unlike the built-in MemoryAdapter whose per-grant bookkeeping
//   is rebuilt on every upsert and so slows as a refresh chain grows.
// - SqliteAdapter: better-sqlite3 (synchronous), WAL with synchronous=FULL, every statement
//   in its own transaction, so each upsert / consume / destroy is committed (fsync'd) before
//   the promise resolves. One table keyed by (model, id), JSON payload, expiry column, and
//   partial indexes on grant_id, uid and user_code.

import Database from 'better-sqlite3';

const now = () => Math.floor(Date.now() / 1000);

// ----------------------------------------------------------------------------------------------
// In memory

const memory = new Map(); // model → { rows: Map(id → {payload, exp}), byGrant, byUid, byUserCode }

function memoryStore(model) {
  let s = memory.get(model);
  if (!s) {
    s = {
      rows: new Map(),
      byGrant: new Map(), // grantId → Set(id)
      byUid: new Map(), // uid → id
      byUserCode: new Map(), // userCode → id
    };
    memory.set(model, s);
  }
  return s;
}

function memoryUnindex(s, id, payload) {
  if (payload.grantId) {
    const ids = s.byGrant.get(payload.grantId);
    if (ids) {
      ids.delete(id);
      if (ids.size === 0) s.byGrant.delete(payload.grantId);
    }
  }
  if (payload.uid && s.byUid.get(payload.uid) === id) s.byUid.delete(payload.uid);
  if (payload.userCode && s.byUserCode.get(payload.userCode) === id) {
    s.byUserCode.delete(payload.userCode);
  }
}

export class MemoryAdapter {
  constructor(model) {
    this.model = model;
    this.s = memoryStore(model);
  }

  async upsert(id, payload, expiresIn) {
    const { s } = this;
    const previous = s.rows.get(id);
    if (previous) memoryUnindex(s, id, previous.payload);
    const exp = typeof expiresIn === 'number' ? now() + expiresIn : Infinity;
    s.rows.set(id, { payload, exp });
    if (payload.grantId) {
      let ids = s.byGrant.get(payload.grantId);
      if (!ids) {
        ids = new Set();
        s.byGrant.set(payload.grantId, ids);
      }
      ids.add(id);
    }
    if (payload.uid) s.byUid.set(payload.uid, id);
    if (payload.userCode) s.byUserCode.set(payload.userCode, id);
  }

  async find(id) {
    const row = this.s.rows.get(id);
    if (!row) return undefined;
    if (row.exp <= now()) {
      this.s.rows.delete(id);
      memoryUnindex(this.s, id, row.payload);
      return undefined;
    }
    return row.payload;
  }

  async findByUid(uid) {
    const id = this.s.byUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = this.s.byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const row = this.s.rows.get(id);
    if (row) row.payload.consumed = now();
  }

  async destroy(id) {
    const row = this.s.rows.get(id);
    if (!row) return;
    this.s.rows.delete(id);
    memoryUnindex(this.s, id, row.payload);
  }

  async revokeByGrantId(grantId) {
    const ids = this.s.byGrant.get(grantId);
    if (!ids) return;
    this.s.byGrant.delete(grantId);
    for (const id of ids) {
      const row = this.s.rows.get(id);
      if (row) {
        this.s.rows.delete(id);
        memoryUnindex(this.s, id, row.payload);
      }
    }
  }
}

/** Drops expired rows (amortised; not on any request's path). */
export function sweepMemory() {
  const t = now();
  for (const s of memory.values()) {
    for (const [id, row] of s.rows) {
      if (row.exp <= t) {
        s.rows.delete(id);
        memoryUnindex(s, id, row.payload);
      }
    }
  }
}

// ----------------------------------------------------------------------------------------------
// SQLite, durable

let db;
let stmt;

export function openSqlite(path) {
  db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS oidc (
      model TEXT NOT NULL,
      id TEXT NOT NULL,
      payload TEXT NOT NULL,
      grant_id TEXT,
      uid TEXT,
      user_code TEXT,
      expires_at INTEGER,
      consumed_at INTEGER,
      PRIMARY KEY (model, id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS oidc_grant ON oidc (grant_id, model) WHERE grant_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS oidc_uid ON oidc (uid, model) WHERE uid IS NOT NULL;
    CREATE INDEX IF NOT EXISTS oidc_user_code ON oidc (user_code, model) WHERE user_code IS NOT NULL;
  `);
  const cols = 'payload, expires_at, consumed_at';
  stmt = {
    upsert: db.prepare(`
      INSERT INTO oidc (model, id, payload, grant_id, uid, user_code, expires_at, consumed_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (model, id) DO UPDATE SET
        payload = excluded.payload, grant_id = excluded.grant_id, uid = excluded.uid,
        user_code = excluded.user_code, expires_at = excluded.expires_at,
        consumed_at = excluded.consumed_at`),
    find: db.prepare(`SELECT ${cols} FROM oidc WHERE model = ? AND id = ?`),
    findByUid: db.prepare(`SELECT ${cols} FROM oidc WHERE uid = ? AND model = ?`),
    findByUserCode: db.prepare(`SELECT ${cols} FROM oidc WHERE user_code = ? AND model = ?`),
    consume: db.prepare('UPDATE oidc SET consumed_at = ? WHERE model = ? AND id = ?'),
    destroy: db.prepare('DELETE FROM oidc WHERE model = ? AND id = ?'),
    revokeByGrantId: db.prepare('DELETE FROM oidc WHERE grant_id = ? AND model = ?'),
    sweep: db.prepare('DELETE FROM oidc WHERE expires_at IS NOT NULL AND expires_at <= ?'),
  };
  return db;
}

function sqliteRow(row) {
  if (!row) return undefined;
  if (row.expires_at !== null && row.expires_at <= now()) return undefined;
  const payload = JSON.parse(row.payload);
  if (row.consumed_at !== null) payload.consumed = row.consumed_at;
  return payload;
}

export class SqliteAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    stmt.upsert.run(
      this.model,
      id,
      JSON.stringify(payload),
      payload.grantId ?? null,
      payload.uid ?? null,
      payload.userCode ?? null,
      typeof expiresIn === 'number' ? now() + expiresIn : null,
      payload.consumed ?? null,
    );
  }

  async find(id) {
    return sqliteRow(stmt.find.get(this.model, id));
  }

  async findByUid(uid) {
    return sqliteRow(stmt.findByUid.get(uid, this.model));
  }

  async findByUserCode(userCode) {
    return sqliteRow(stmt.findByUserCode.get(userCode, this.model));
  }

  async consume(id) {
    stmt.consume.run(now(), this.model, id);
  }

  async destroy(id) {
    stmt.destroy.run(this.model, id);
  }

  async revokeByGrantId(grantId) {
    stmt.revokeByGrantId.run(grantId, this.model);
  }
}

export function sweepSqlite() {
  stmt.sweep.run(now());
}
