#!/usr/bin/env bash
# Builds wsecho and the benchmark tools, installs the peers in other languages (Node `ws`,
# Python `websockets`: bench/peers) when their package registries are reachable, then runs
# the benchmark: every server pinned to CPU 0, the runner and its load generator on CPU 1.
# Prints tables of medians; then bench/cluster.sh's table for broadcast across nodes.
#
# usage: bench/run.sh [--rounds N] [--duration SECS] [--only SCENARIO]... [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
# The fan-out peers; a machine that cannot install them runs the rest without them.
(cd bench/peers && npm ci --no-audit --no-fund --loglevel=error) ||
  echo "bench: Node ws not installed; its rows are skipped" >&2
if [ ! -x target/bench/venv/bin/python ]; then
  { python3 -m venv target/bench/venv &&
    target/bench/venv/bin/pip install --quiet -r bench/peers/requirements.txt; } ||
    { echo "bench: Python websockets not installed; its rows are skipped" >&2; rm -rf target/bench/venv; }
fi
# 10,000 idle connections need as many descriptors on each side.
ulimit -n "$(ulimit -Hn)"
taskset -c 1 target/release/bench "$@"
# Broadcast across nodes (two wsecho nodes and Redis against one node), where redis-server
# is installed; --quick runs one short round of it.
if command -v redis-server >/dev/null; then
  case " $* " in
    *" --quick "*) bench/cluster.sh --rounds 1 --duration 2 ;;
    *" --only "*) ;;
    *) bench/cluster.sh ;;
  esac
else
  echo "bench: redis-server not installed; the cluster table is skipped" >&2
fi
