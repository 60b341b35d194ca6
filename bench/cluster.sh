#!/usr/bin/env bash
# Broadcast across nodes: two wsecho nodes sharing a room through one Redis, against one
# node alone, at the same offered load: one sender on node A at RATE messages a second to a
# room of RECEIVERS members split between A and B (all on the one node alone), so RATE ×
# (RECEIVERS + 1) deliveries a second. Rounds alternate the two set-ups; the table shows
# medians. Servers and Redis share CPU 0, the load generator has CPU 1; only loopback.
#
# usage: bench/cluster.sh [--rounds N] [--rate MSGS_PER_SEC] [--receivers N] [--duration SECS]
# WSECHO=path/to/wsecho runs another build of the server (an older commit's, to compare).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 rate=100 receivers=100 duration=5
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --receivers) receivers=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
cargo build --release --quiet --workspace
wsecho=${WSECHO:-target/release/wsecho}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node NAME ARGS...: starts wsecho on CPU 0, prints its pid and address.
start_node() {
  local name=$1; shift
  taskset -c 0 "$wsecho" --host 127.0.0.1 --port 0 --mode broadcast "$@" \
    >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local addr=""
  for _ in $(seq 100); do
    addr=$(grep -o 'ws://127\.0\.0\.1:[0-9]\+' "$work/$name.log" | head -1 | sed 's|ws://||' || true)
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "$name did not start" >&2; cat "$work/$name.log" >&2; exit 1; }
  echo "$pid $addr"
}

redis_port=$(free_port)
taskset -c 0 redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work" --save "" \
  --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 100); do
  [ "$(printf 'PING\r\n' | timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$redis_port; cat >&3; head -c 7 <&3" 2>/dev/null)" = $'+PONG\r' ] && break
  sleep 0.05
done
redis_url="redis://127.0.0.1:$redis_port"
load=(--mode fanout --senders 1 --connections "$receivers" --rate "$rate" --size 64
      --welcome --duration "$duration" --warmup 1)

results="$work/results.jsonl"
for round in $(seq "$rounds"); do
  read -r pid addr < <(start_node "single-$round")
  out=$(taskset -c 1 target/release/loadgen --addr "$addr" --path "/bench$round" --server-pid "$pid" "${load[@]}")
  echo "{\"setup\":\"one node\",\"round\":$round,\"result\":$out}" >>"$results"
  echo "round $round one node:  $out"
  kill "$pid"; wait "$pid" 2>/dev/null || true

  read -r pid_a addr_a < <(start_node "a-$round" --redis "$redis_url")
  read -r pid_b addr_b < <(start_node "b-$round" --redis "$redis_url")
  out=$(taskset -c 1 target/release/loadgen --addr "$addr_a" --remote-addr "$addr_b" \
    --path "/bench$round" --server-pid "$pid_a" --remote-pid "$pid_b" \
    --backend-pid "$redis_pid" "${load[@]}")
  echo "{\"setup\":\"two nodes + Redis\",\"round\":$round,\"result\":$out}" >>"$results"
  echo "round $round two nodes: $out"
  kill "$pid_a" "$pid_b"; wait "$pid_a" "$pid_b" 2>/dev/null || true
done

python3 - "$results" "$rate" "$receivers" <<'EOF'
import json, statistics, sys
path, rate, receivers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(line) for line in open(path)]
print()
print(f"one sender at {rate} msg/s, {receivers} receivers (+ the sender), 64-byte messages; medians of {len(rows)//2} rounds")
print("| set-up | deliveries/s | server µs CPU per delivery (all nodes) | Redis µs per delivery | p50 ms | p99 ms | out of order |")
print("|---|---|---|---|---|---|---|")
for setup in ["one node", "two nodes + Redis"]:
    results = [row["result"] for row in rows if row["setup"] == setup]
    med = lambda key: statistics.median(r[key] for r in results)
    backend = med("backend_us_per_delivery")
    backend = "–" if backend != backend else f"{backend:.2f}"
    print(f"| {setup} | {med('deliveries_per_sec'):.0f} | {med('server_us_per_delivery'):.2f} | {backend} | "
          f"{med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {sum(r['out_of_order'] for r in results)} |")
EOF
