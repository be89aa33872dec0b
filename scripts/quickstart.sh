#!/usr/bin/env bash
# `make run`: one local cluster (control plane + one node running real containers), the
# example app deployed on it and answering; serves until Ctrl-C, which stops everything.
# DATA_DIR, LISTEN, AGENT_PORT and RUNTIME (auto|oci|process) may be overridden.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.venv/bin"
DATA_DIR="${DATA_DIR:-/tmp/bosun-quickstart}"
LISTEN="${LISTEN:-127.0.0.1:6443}"
RUNTIME="${RUNTIME:-auto}"
AGENT_PORT="${AGENT_PORT:-10250}"
KC="$DATA_DIR/kubeconfig"
LOG="$DATA_DIR/bosun.log"
mkdir -p "$DATA_DIR"

# In a session of its own, so that Ctrl-C reaches it once, from the trap below: the
# terminal's own SIGINT as well would be a second Ctrl-C, which stops at once leaving pods.
setsid "$BIN/bosun" up --data-dir "$DATA_DIR" --listen "$LISTEN" --agent-port "$AGENT_PORT" \
  --runtime "$RUNTIME" >"$LOG" 2>&1 &
UP=$!
stop() { kill -INT "$UP" 2>/dev/null && echo "== stopping bosun up (its pods within their grace periods)"; wait "$UP"; }
trap 'stop 2>/dev/null || true' EXIT
# bosun up exits 0 once everything is stopped: so does this script (and `make run`).
trap 'stop; exit $?' INT TERM

for _ in $(seq 1 300); do
  grep -q '^ready' "$LOG" 2>/dev/null && break
  if ! kill -0 "$UP" 2>/dev/null; then cat "$LOG"; exit 1; fi
  sleep 0.1
done
grep -q '^ready' "$LOG" || { echo "bosun up did not become ready; see $LOG"; exit 1; }
echo "== cluster ready: API at https://$LISTEN (log: $LOG)"
"$BIN/bosun" --kubeconfig "$KC" get nodes -o wide
echo
"$BIN/bosun" --kubeconfig "$KC" apply -f "$ROOT/examples/hello.yaml"
echo "== waiting for the example to be ready"
kubectl_wait() {  # our own CLI has no rollout status yet: poll the Deployment's status
  for _ in $(seq 1 120); do
    ready=$("$BIN/bosun" --kubeconfig "$KC" get deploy hello -o json | "$BIN/python" -c \
      'import json,sys; d=json.load(sys.stdin); print(d.get("status",{}).get("readyReplicas",0) == d["spec"]["replicas"])')
    [ "$ready" = "True" ] && return 0
    sleep 1
  done
  return 1
}
kubectl_wait || { echo "the example did not become ready; see $LOG"; "$BIN/bosun" --kubeconfig "$KC" get pods -o wide; exit 1; }
"$BIN/bosun" --kubeconfig "$KC" get deploy,pods,svc,endpoints -o wide
IP=$("$BIN/bosun" --kubeconfig "$KC" get pods -l app=hello -o json | "$BIN/python" -c \
  'import json,sys; print(json.load(sys.stdin)["items"][0]["status"]["podIP"])')
VIP=$("$BIN/bosun" --kubeconfig "$KC" get svc hello -o json | "$BIN/python" -c \
  'import json,sys; print(json.load(sys.stdin)["spec"]["clusterIP"])')
FETCH='import re,sys,urllib.request; r=urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status, re.search("<title>(.*)</title>", r.read().decode()).group(1))'
echo
echo "== the app answers on its pod IP ($IP:8080):"
"$BIN/python" -c "$FETCH" "http://$IP:8080/"
echo "== through its Service's cluster IP from this host ($VIP:80):"
"$BIN/python" -c "$FETCH" "http://$VIP/"
echo "== by its Service name from inside a pod (cluster DNS: http://hello/):"
POD=$("$BIN/bosun" --kubeconfig "$KC" get pods -l app=hello -o json | "$BIN/python" -c \
  'import json,sys; print(json.load(sys.stdin)["items"][-1]["metadata"]["name"])')
if command -v kubectl >/dev/null; then
  kubectl --kubeconfig "$KC" exec "$POD" -- python3 -c "$FETCH" "http://hello/"
else
  echo "(kubectl not installed: skipped)"
fi
cat <<MSG

Use it:
  kubectl --kubeconfig $KC get all
  kubectl --kubeconfig $KC logs deploy/hello
  kubectl --kubeconfig $KC exec -it deploy/hello -- sh
  kubectl --kubeconfig $KC top pods

Serving until Ctrl-C.
MSG
wait $UP
