#!/usr/bin/env bash
# Runs the Autobahn|Testsuite fuzzing client (RFC 6455 conformance, every section) against
# `wsecho --mode raw` and fails on any FAILED or missing case, or any case that does worse
# than tests/autobahn/expected.json records.
#
# usage: tests/autobahn/run.sh [CASES]        e.g. run.sh '1.*,5.*' (default: all)
# env:   AUTOBAHN_PREFIX      where install.sh puts the suite (default $HOME/.cache/wsecho-autobahn)
#        AUTOBAHN_REPORT_DIR  report directory (default target/autobahn); index.html is the report
#        AUTOBAHN_UPDATE=1    rewrite expected.json from this run instead of checking against it
#        AUTOBAHN_TLS=1       run the suite over wss:// against wsecho --tls-self-signed
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CASES="${1:-*}"
export AUTOBAHN_PREFIX="${AUTOBAHN_PREFIX:-$HOME/.cache/wsecho-autobahn}"
REPORT="${AUTOBAHN_REPORT_DIR:-$ROOT/target/autobahn}"

"$HERE/install.sh"
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"

rm -rf "$REPORT"; mkdir -p "$REPORT"
REPORT="$(cd "$REPORT" && pwd)"  # wstest runs from inside it
SERVER_LOG="$REPORT/wsecho.log"
SCHEME=ws
TLS_ARGS=()
if [[ "${AUTOBAHN_TLS:-0}" == 1 ]]; then
  SCHEME=wss
  TLS_ARGS=(--tls-self-signed)
fi
RUST_LOG=info "$ROOT/target/release/wsecho" --mode raw --host 127.0.0.1 --port 0 "${TLS_ARGS[@]}" 2> "$SERVER_LOG" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  PORT="$(grep -oE "listening on $SCHEME://127\.0\.0\.1:[0-9]+" "$SERVER_LOG" | grep -oE '[0-9]+$' || true)"
  [[ -n "$PORT" ]] && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$SERVER_LOG" >&2; echo "wsecho did not start" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$PORT" ]] || { echo "wsecho never logged its port" >&2; exit 1; }

python3 - "$HERE/fuzzingclient.json" "$REPORT" "$SCHEME://127.0.0.1:$PORT" "$CASES" > "$REPORT/spec.json" <<'PY'
import json, sys
template, outdir, url, cases = sys.argv[1:5]
spec = json.load(open(template))
spec["outdir"] = outdir
spec["servers"][0]["url"] = url
spec["cases"] = [c.strip() for c in cases.split(",") if c.strip()]
print(json.dumps(spec, indent=2))
PY

echo "[autobahn] running cases '$CASES' against $SCHEME://127.0.0.1:$PORT; report in $REPORT" >&2
start=$(date +%s)
status=0
(cd "$REPORT" && timeout 1200 "$AUTOBAHN_PREFIX/bin/wstest" -m fuzzingclient -s "$REPORT/spec.json") \
  > "$REPORT/wstest.log" 2>&1 || status=$?
echo "[autobahn] wstest finished in $(( $(date +%s) - start ))s with status $status" >&2
[[ $status -eq 0 ]] || tail -n 20 "$REPORT/wstest.log" >&2

kill -TERM "$SERVER"
wait "$SERVER" || { echo "wsecho did not exit cleanly after the run" >&2; exit 1; }
trap - EXIT
if grep -E '\] (ERROR|WARN) |panicked' "$SERVER_LOG" >&2; then
  echo "wsecho logged errors or panicked during the run (above)" >&2
  exit 1
fi

python3 "$HERE/check.py" "$REPORT" "$HERE/expected.json"
