#!/usr/bin/env bash
# User-space instructions per message, counted by valgrind's callgrind: a figure that does
# not move with the machine's noise (unlike CPU time, which moves ±10-20% from run to run on
# a shared VM), so small changes to the per-message path can be compared exactly. It counts
# only the server's own instructions, not the kernel's, and says nothing about cache misses:
# bench/run.sh remains the measure of speed.
#
# usage: bench/instructions.sh [SCENARIO]   (echo64 | pipe1k | pipe64k | fanout | fanout10 |
# handshake; default echo64)
# Prints one line per server: the TCP ceiling, wsecho --mode raw, wsecho's default mode; for
# the fan-out scenarios (one room, 64-byte messages), per delivery: the TCP fan-out ceiling
# and wsecho --mode broadcast; for handshake, per connection opened (accept to 101, 2,000
# connections held, as the benchmark's idle scenario counts them): wsecho --mode raw.
# WSECHO=path/to/another/wsecho measures that build instead, to compare two versions.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/listening.sh
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --quiet --workspace
scenario=${1:-echo64}
wsecho=${WSECHO:-target/release/wsecho}
case $scenario in
  echo64) load=(--mode echo --connections 64 --size 32) ;;
  pipe1k) load=(--mode pipelined --connections 64 --in-flight 16 --size 1024) ;;
  pipe64k) load=(--mode pipelined --connections 16 --in-flight 4 --size 65536) ;;
  fanout) load=(--mode fanout --senders 1 --connections 1000 --in-flight 8 --size 64 --path /room) ;;
  fanout10) load=(--mode fanout --senders 10 --connections 100 --in-flight 8 --size 64 --path /room) ;;
  handshake) load=(--mode idle --sources 4 --connections 10000 --source-block 77) ;;
  *) echo "unknown scenario: $scenario" >&2; exit 2 ;;
esac
work=$(mktemp -d)
echo "work: $work"

# wait_for_mark FILE LOADGEN_PID: waits until the load generator creates FILE; fails if it
# exits first.
wait_for_mark() {
  while [ ! -e "$1" ]; do
    kill -0 "$2" 2>/dev/null || { echo "the load generator failed" >&2; exit 1; }
    sleep 0.02
  done
}

# measure NAME LOADGEN_FLAGS -- SERVER COMMAND...
measure() {
  local name=$1 extra=$2
  shift 3
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$@" >"$work/$name.log" 2>&1 &
  local pid=$! addr
  addr=$(listening_address "$work/$name.log" "$name") || exit 1
  # Connections, handshakes and the warm-up are left out: counting starts when the load
  # generator starts its measured window (to within 20 ms of the 6 s measured).
  target/release/loadgen --addr "$addr" "${load[@]}" $extra --warmup 1 --duration 6 \
    --mark-start "$work/$name.measuring" >"$work/$name.json" &
  local loadgen=$!
  wait_for_mark "$work/$name.measuring" "$loadgen"
  callgrind_control --zero "$pid" >/dev/null 2>&1
  wait "$loadgen"
  callgrind_control --dump "$pid" >/dev/null 2>&1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 - "$name" "$work" <<'EOF'
import glob, json, sys
name, work = sys.argv[1], sys.argv[2]
result = json.load(open(f"{work}/{name}.json"))
# Fan-out counts deliveries (one message to one member), the others messages.
unit = "delivery" if "deliveries" in result else "message"
messages = result["deliveries"] if unit == "delivery" else result["messages"]
# The dump after --zero holds what ran since; take the newest dump file.
dumps = sorted(glob.glob(f"{work}/{name}.out.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
total = next(int(l.split()[1]) for l in open(dumps[-1]) if l.startswith(("summary:", "totals:")))
print(f"{name:<28} {total // messages:>8} instructions/{unit} ({messages} counted)")
EOF
}

# measure_handshakes NAME -- SERVER COMMAND...: counts from the moment the server listens
# until the load generator has every connection open, so its process start is left out and
# so are the closes.
measure_handshakes() {
  local name=$1
  shift 2
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" "$@" >"$work/$name.log" 2>&1 &
  local pid=$! addr
  addr=$(listening_address "$work/$name.log" "$name") || exit 1
  callgrind_control --zero "$pid" >/dev/null 2>&1
  target/release/loadgen --addr "$addr" "${load[@]}" --mark-opened "$work/$name.opened" \
    >"$work/$name.json" &
  local loadgen=$!
  wait_for_mark "$work/$name.opened" "$loadgen"
  callgrind_control --dump "$pid" >/dev/null 2>&1
  wait "$loadgen"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 - "$name" "$work" <<'EOF'
import glob, json, sys
name, work = sys.argv[1], sys.argv[2]
opened = json.load(open(f"{work}/{name}.json"))["connections"]
dumps = sorted(glob.glob(f"{work}/{name}.out.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
total = next(int(l.split()[1]) for l in open(dumps[-1]) if l.startswith(("summary:", "totals:")))
print(f"{name:<28} {total // opened:>8} instructions/handshake ({opened} counted)")
EOF
}

echo "user-space instructions, $scenario (callgrind):"
case $scenario in
  handshake)
    measure_handshakes "wsecho --mode raw" -- "$wsecho" --threads 1 --host 127.0.0.1 --port 0 \
      --mode raw
    ;;
  fanout*)
    measure "TCP fan-out (ceiling)" "" -- target/release/fanout-ceiling 0
    measure "wsecho --mode broadcast" "" -- "$wsecho" --threads 1 --host 127.0.0.1 --port 0 \
      --mode broadcast --welcome "" --max-queue 4096
    ;;
  *)
    measure "tokio TCP echo (ceiling)" "--tcp" -- target/release/tcp-echo 0
    measure "wsecho --mode raw" "" -- "$wsecho" --threads 1 --host 127.0.0.1 --port 0 --mode raw
    measure "wsecho (default echo mode)" "--welcome" -- "$wsecho" --threads 1 --host 127.0.0.1 \
      --port 0
    ;;
esac
