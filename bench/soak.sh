#!/usr/bin/env bash
# Builds wsecho and the soak client, then soaks one server per mode with a mixed population
# of good and bad clients for --duration seconds (default 120). Exit status 0 only if every
# check held; target/soak/ keeps the servers' logs.
#
# usage: bench/soak.sh [--duration SECS] [--max-p99-ms MS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
ulimit -n "$(ulimit -Hn)"
exec target/release/soak "$@"
