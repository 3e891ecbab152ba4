#!/usr/bin/env bash
# Installs the benchmark peer's dependencies (node-oidc-provider, better-sqlite3) into
# bench/peer/node_modules. Idempotent: does nothing when the pinned versions are installed and
# better-sqlite3's native module loads. better-sqlite3 cannot download its prebuilt binary on
# this network, so it is installed without scripts and built from its bundled SQLite with the
# node-gyp that ships with npm, against the system Node headers (/usr/include/node).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

ready() {
  node --input-type=module -e '
    import { createRequire } from "node:module";
    import { readFileSync } from "node:fs";
    const require = createRequire(process.cwd() + "/");
    const want = JSON.parse(readFileSync("package.json")).dependencies;
    for (const [name, version] of Object.entries(want)) {
      const got = JSON.parse(readFileSync(`node_modules/${name}/package.json`)).version;
      if (got !== version) throw new Error(`${name} ${got} != ${version}`);
    }
    new (require("better-sqlite3"))(":memory:").prepare("select 1").get();
    await import("oidc-provider");
  ' >/dev/null 2>&1
}

if ready; then
  echo "bench/peer: dependencies ready"
  exit 0
fi

command -v node >/dev/null || { echo "bench/peer: node is not installed" >&2; exit 1; }
if [ -f package-lock.json ]; then
  npm ci --ignore-scripts --no-audit --no-fund
else
  npm install --ignore-scripts --no-audit --no-fund
fi
GYP="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
NODEDIR=/usr
[ -f "$NODEDIR/include/node/node.h" ] || NODEDIR="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
(cd node_modules/better-sqlite3 && node "$GYP" rebuild --release --nodedir="$NODEDIR" -j "$(nproc)")
ready || { echo "bench/peer: setup finished but the dependencies do not load" >&2; exit 1; }
echo "bench/peer: dependencies ready"
