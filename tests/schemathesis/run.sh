#!/usr/bin/env bash
# Schemathesis (PyPI) against the relay's own OpenAPI document, once per role: a survivor
# device, an advocate's device, a supervisor's device, and without a token. Fails on any
# server error (5xx) or any response that breaks the documented schema (status code,
# content type, headers, body).
#
#   tests/schemathesis/run.sh [SECONDS_PER_ROLE]      (default 20)
#
# The relay is the test kit's (quietline-fixture: SQLite in a temporary directory, or
# PostgreSQL when QUIETLINE_TEST_POSTGRES_URL is set), with an organisation, members, a
# claimed conversation and a pending message, so the generated calls reach real data.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-20}"
python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install -q 'schemathesis>=4,<5'

cargo build -q --locked --workspace --bins
fifo_dir="$(mktemp -d)"
mkfifo "$fifo_dir/in"
# The fixture serves until its standard input closes: keep the FIFO open while we run.
./target/debug/quietline-fixture <"$fifo_dir/in" >"$fifo_dir/out" &
fixture=$!
exec 3>"$fifo_dir/in"
cleanup() {
    exec 3>&-
    wait "$fixture" 2>/dev/null || true
    rm -rf "$fifo_dir"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    [ -s "$fifo_dir/out" ] && break
    kill -0 "$fixture" 2>/dev/null || { echo "the fixture server did not start" >&2; exit 1; }
    sleep 0.2
done
info="$(head -1 "$fifo_dir/out")"
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval("d"+sys.argv[2]))' "$info" "$1"; }
base="$(field '["base"]')"
echo "relay at $base ($(field '["backend"]'))"

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"
for role in survivor advocate supervisor anonymous; do
    echo
    echo "=== $role"
    auth=()
    if [ "$role" != anonymous ]; then
        auth=(-H "Authorization: Bearer $(field "[\"tokens\"][\"$role\"]")")
    fi
    # Quick exit takes the exit token and would end the survivor's session for the
    # other roles' runs; it is exercised on its own below.
    st run "$base/v1/openapi.json" --url "$base" "${auth[@]}" \
        --checks "$checks" --max-time "$seconds" --workers 2 \
        --exclude-path /v1/exit --exclude-path /v1/exit/return \
        --report json --report-json-path "$fifo_dir/$role.json" \
        --suppress-health-check all --warnings off --no-color >"$fifo_dir/$role.log" 2>&1 || true
    grep -E "^ +[0-9]+ generated|failures? in|No issues found|errors? in" "$fifo_dir/$role.log" | cut -c1-200 || true
done
echo
echo "=== quick exit (no token, unknown tokens)"
st run "$base/v1/openapi.json" --url "$base" \
    --include-path /v1/exit --include-path /v1/exit/return \
    --checks "$checks" --max-time "$seconds" --workers 2 \
    --report json --report-json-path "$fifo_dir/exit.json" \
    --suppress-health-check all --warnings off --no-color >"$fifo_dir/exit.log" 2>&1 || true
grep -E "^ +[0-9]+ generated|failures? in|No issues found|errors? in" "$fifo_dir/exit.log" | cut -c1-200 || true
echo
echo "=== summary"
python3 tests/schemathesis/summary.py "$fifo_dir"/{survivor,advocate,supervisor,anonymous,exit}.json || {
    # Keep the full logs of a failed run for reading.
    keep="$(mktemp -d)"
    cp "$fifo_dir"/*.log "$fifo_dir"/*.json "$keep"/
    echo "full logs in $keep" >&2
    exit 1
}
