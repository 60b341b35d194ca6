#!/usr/bin/env bash
# Builds wsecho and the benchmark tools, then runs the benchmark: every server pinned to
# CPU 0, the runner and its load generator on CPU 1. Prints one table of medians.
#
# usage: bench/run.sh [--rounds N] [--duration SECS] [--only SCENARIO]... [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
# 10,000 idle connections need as many descriptors on each side.
ulimit -n "$(ulimit -Hn)"
exec taskset -c 1 target/release/bench "$@"
