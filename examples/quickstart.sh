#!/usr/bin/env bash
# kernelform in two minutes, on a throwaway Jupyter server on loopback.
#
#   bash examples/quickstart.sh
#
# Installs kernelform (and jupyter_server + ipykernel) into .venv, starts a
# Jupyter server with a random token in a temporary dir, then walks through
# validate -> plan -> apply -> plan -> a kernel killed behind kernelform's back
# -> plan -> apply -> destroy, and stops the server whatever happens.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [ ! -x .venv/bin/kernelform ] || ! .venv/bin/python -c 'import jupyter_server, ipykernel' 2>/dev/null; then
  echo "==> installing kernelform and a Jupyter server into .venv"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q -e '.[test]'
fi
export PATH="$repo/.venv/bin:$PATH"

work=$(mktemp -d)
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export JUPYTER_URL="http://127.0.0.1:$port"
export JUPYTER_TOKEN=$(python -c 'import secrets; print(secrets.token_hex(16))')
export JUPYTER_RUNTIME_DIR="$work/runtime" JUPYTER_CONFIG_DIR="$work/config"
mkdir -p "$work/root/pipelines/etl"

root_flag=()
[ "$(id -u)" = 0 ] && root_flag=(--allow-root)
echo "==> starting a throwaway Jupyter server on $JUPYTER_URL (log: $work/server.log)"
python -m jupyter_server --no-browser "${root_flag[@]}" --ip 127.0.0.1 --port "$port" \
  --ServerApp.token="$JUPYTER_TOKEN" --ServerApp.root_dir="$work/root" \
  >"$work/server.log" 2>&1 &
server_pid=$!
cleanup() {
  kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  python -c "import requests,os,sys; r=requests.get(os.environ['JUPYTER_URL']+'/api/status', headers={'Authorization': 'token '+os.environ['JUPYTER_TOKEN']}, timeout=1); sys.exit(r.status_code!=200)" 2>/dev/null && break
  sleep 0.5
done

cp examples/pool.yaml "$work/kernelform.yaml"
cd "$work"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step kernelform validate
step kernelform plan
step kernelform apply --auto-approve
step kernelform plan
victim=$(kernelform state list --json | python -c 'import json,sys; print(json.load(sys.stdin)[0]["kernel_id"])')
printf '\n==> shutting down kernel %s behind kernelform'"'"'s back\n' "$victim"
step kernelform kernels shutdown "$victim"
step kernelform plan
step kernelform apply --auto-approve
step kernelform plan
step kernelform destroy --auto-approve
step kernelform kernels list
printf '\n==> done; the server stops now\n'
