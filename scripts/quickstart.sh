#!/usr/bin/env bash
# `make run`: start a local control plane, apply the example app, show it, keep serving.
# Ctrl-C stops the server. DATA_DIR and LISTEN may be overridden.
set -euo pipefail
BIN="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin"
DATA_DIR="${DATA_DIR:-/tmp/bosun-quickstart}"
LISTEN="${LISTEN:-127.0.0.1:6443}"
KC="$DATA_DIR/kubeconfig"
LOG="$DATA_DIR/server.log"
mkdir -p "$DATA_DIR"

"$BIN/bosun" server --data-dir "$DATA_DIR" --listen "$LISTEN" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 1 100); do
  grep -q '^ready' "$LOG" 2>/dev/null && break
  if ! kill -0 "$SERVER" 2>/dev/null; then cat "$LOG"; exit 1; fi
  sleep 0.1
done
grep -q '^ready' "$LOG" || { echo "the server did not become ready; see $LOG"; exit 1; }

echo "== control plane ready at https://$LISTEN (log: $LOG)"
"$BIN/bosun" --kubeconfig "$KC" apply -f examples/hello.yaml
echo
"$BIN/bosun" --kubeconfig "$KC" get deploy,svc -o wide
cat <<MSG

The example app's objects are stored and served by the API. (Pods are scheduled and run
once the scheduler, controllers and node agent land: see the open issues.)

Use it:
  kubectl --kubeconfig $KC get all -A
  $BIN/bosun --kubeconfig $KC get deploy hello -o yaml

Serving until Ctrl-C.
MSG
wait $SERVER
