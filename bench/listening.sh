# Sourced by the bench scripts. listening_address LOG NAME: waits up to 30 s for the server
# NAME to log the 127.0.0.1 address it listens on, and prints it; fails, showing the log,
# if it does not.
listening_address() {
  local log=$1 name=$2 addr=""
  for _ in $(seq 300); do
    addr=$(grep -o '127\.0\.0\.1:[0-9]\+' "$log" | head -1 || true)
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "$name did not start:" >&2
  cat "$log" >&2
  return 1
}
