#!/usr/bin/env bash
# Regenerate the dashboard's API types from the server itself: boot the given `quietline`
# binary on a throw-away database, save its /v1/openapi.json (pretty-printed) as
# src/api/openapi.json and turn it into src/api/schema.d.ts with openapi-typescript.
# Usage: web/scripts/openapi.sh [path/to/quietline]   (default: target/debug/quietline)
set -euo pipefail
web="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$web/../target/debug/quietline}"
data="$(mktemp -d)"
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
QUIETLINE_DATA_DIR="$data" QUIETLINE_LISTEN="127.0.0.1:$port" QUIETLINE_ADMIN_LISTEN="" \
    QUIETLINE_LOG_LEVEL=warn "$bin" serve &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/v1/openapi.json" \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(JSON.parse(s),null,2)+"\n"))' \
    > "$web/src/api/openapi.json"
cd "$web"
npx openapi-typescript src/api/openapi.json -o src/api/schema.d.ts >/dev/null
echo "web/src/api: openapi.json and schema.d.ts regenerated"
