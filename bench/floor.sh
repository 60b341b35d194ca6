#!/usr/bin/env bash
# How close can a tungstenite server come to the TCP ceiling? Builds wsecho with
# bench/floor.patch applied (its features taken off the per-message path, see the patch's
# header) and alternates the servers in every round, as bench/run.sh does: the TCP ceiling,
# fastwebsockets, wsecho --mode raw and the floor build. Prints each round's CPU per message
# and the medians of the per-round ratios. If the floor build is no nearer the ceiling than
# wsecho, what separates wsecho from the ceiling is tungstenite and tokio, not wsecho's
# features.
#
# usage: bench/floor.sh [echo1000|pipe64k|pipe64k64|pipe64k-wss] [ROUNDS]   (default echo1000 8)
# pipe64k-wss is pipelined 64 KiB over TLS, against the TLS ceiling (bench/src/bin/tls-echo.rs);
# fastwebsockets has no TLS here and sits it out.
# Instructions per message of the floor build: after a run,
#   WSECHO=target/floor/release/wsecho bench/instructions.sh SCENARIO
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/listening.sh
scenario=${1:-echo1000}
rounds=${2:-8}
case $scenario in
  echo1000) load=(--mode echo --connections 1000 --size 32) ;;
  pipe64k) load=(--mode pipelined --connections 16 --in-flight 4 --size 65536) ;;
  pipe64k64) load=(--mode pipelined --connections 64 --in-flight 4 --size 65536) ;;
  pipe64k-wss) load=(--mode pipelined --connections 16 --in-flight 4 --size 65536) ;;
  *) echo "unknown scenario: $scenario" >&2; exit 2 ;;
esac
cargo build --release --quiet --workspace
# The floor build: a copy of HEAD with the patch, in a target directory of its own so that
# target/release/wsecho stays the real one.
source=target/floor/src
rm -rf "$source"
mkdir -p "$source"
git archive HEAD | tar -x -C "$source"
git apply --directory="$source" bench/floor.patch ||
  { echo "bench/floor.patch no longer applies to HEAD: refresh it" >&2; exit 1; }
# The patch leaves code unused; its warnings say nothing here.
RUSTFLAGS=-Awarnings CARGO_TARGET_DIR=target/floor cargo build --release --quiet --manifest-path "$source/Cargo.toml" -p wsecho
floor=target/floor/release/wsecho
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ulimit -n "$(ulimit -Hn)"

# run NAME LOADGEN_FLAGS -- SERVER COMMAND...: one measured run, its JSON appended to
# $work/NAME.
run() {
  local name=$1 extra=$2
  shift 3
  rm -f "$work/cert.pem"
  taskset -c 0 "$@" >"$work/server.log" 2>&1 &
  local pid=$! addr
  addr=$(listening_address "$work/server.log" "$name") || exit 1
  taskset -c 1 target/release/loadgen --addr "$addr" --server-pid "$pid" "${load[@]}" $extra \
    --warmup 1 --duration 4 >>"$work/$name"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

servers=(ceiling fastwebsockets wsecho floor)
tls=()
if [ "$scenario" = pipe64k-wss ]; then
  servers=(ceiling wsecho floor)
  tls=(--tls-self-signed --tls-cert-out "$work/cert.pem")
fi
for round in $(seq "$rounds"); do
  # Rotate the order each round, so no server always runs first or after the same one.
  for index in $(seq 0 $((${#servers[@]} - 1))); do
    name=${servers[$(((index + round) % ${#servers[@]}))]}
    case $name in
      ceiling) if [ ${#tls[@]} -eq 0 ]; then
          run ceiling --tcp -- target/release/tcp-echo 0
        else
          run ceiling "--tcp --tls-ca $work/cert.pem" -- target/release/tls-echo --port 0 \
            --cert-out "$work/cert.pem"
        fi ;;
      fastwebsockets) run fastwebsockets "" -- target/release/fastwebsockets-echo 0 ;;
      wsecho | floor)
        binary=target/release/wsecho
        [ "$name" = floor ] && binary=$floor
        run "$name" "${tls:+--tls-ca $work/cert.pem}" -- "$binary" --host 127.0.0.1 --port 0 \
          --mode raw "${tls[@]}" ;;
    esac
  done
  echo "round $round of $rounds done" >&2
done

python3 - "$work" "$scenario" <<'EOF'
import json, os, statistics, sys
work, scenario = sys.argv[1], sys.argv[2]
names = [n for n in ["ceiling", "fastwebsockets", "wsecho", "floor"] if os.path.exists(f"{work}/{n}")]
runs = {n: [json.loads(line) for line in open(f"{work}/{n}")] for n in names}
def ratios(name, base, key="server_us_per_msg"):
    return [a[key] / b[key] for a, b in zip(runs[name], runs[base])]
print(f"{scenario}: µs of server CPU per message (user), median of {len(runs['ceiling'])} rounds")
for n in names:
    cpu = statistics.median(r["server_us_per_msg"] for r in runs[n])
    user = statistics.median(r["server_user_us_per_msg"] for r in runs[n])
    p99 = statistics.median(r["p99_us"] for r in runs[n]) / 1000
    print(f"  {n:<15} {cpu:7.2f} ({user:.2f})  p99 {p99:.2f} ms")
for base in [b for b in ["ceiling", "fastwebsockets"] if b in names]:
    for n in names:
        if n == base or (base == "fastwebsockets" and n == "ceiling"):
            continue
        each = ratios(n, base)
        print(f"  {n} / {base}: {statistics.median(each):.3f}  rounds: "
              + " ".join(f"{r:.2f}" for r in each))
EOF
