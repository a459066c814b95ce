#!/usr/bin/env bash
# profile.sh HARNESS_DIR OUT_DIR: where a 1-worker a3s-gateway spends its CPU under load.
#
# Same topology as the harness's pinned run: the backend (the harness's nginx config, `GET /`
# -> "hello") and wrk on CPU 0, the gateway alone on CPU 1, rendered from benchmarks/gateway.hcl.
# After a warm-up, py-spy samples the gateway (--nonblocking: it never stops the process, so
# the load is not perturbed; --idle off: time waiting in epoll is not counted) while
# `wrk -t2 -c64 -d${PROFILE_SECONDS:-15}s` runs.  Output in OUT_DIR:
#   profile.txt   py-spy's raw collapsed stacks ("frame;frame;... count"); any flame-graph
#                 tool reads them, benchmarks/report.py turns them into the self-time tables
#   wrk.txt       the load run's wrk output (py-spy's sampling costs a little throughput)
#   command.txt   the exact commands
set -euo pipefail

HARNESS=$1
OUT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
SECONDS_=${PROFILE_SECONDS:-15}
RATE=${PROFILE_RATE:-200}
mkdir -p "$OUT"
rm -rf "$OUT/work"
mkdir -p "$OUT/work"

OFF=${PORT_OFFSET:-0}
BACKEND=$((9001 + OFF))
LISTEN=$((9100 + OFF))
for port in $BACKEND $LISTEN; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use: stop whatever listens there first" >&2
        exit 1
    fi
done

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${pids[@]}"; do
        kill -KILL -- "-$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_http() {  # wait_http PORT PATH: up to 20 s for a 200
    local i
    for i in $(seq 200); do
        if "$PY" - "$1" "$2" <<'EOF' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"GET " + sys.argv[2].encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
sys.exit(0 if s.recv(64).startswith(b"HTTP/1.1 200") else 1)
EOF
        sleep 0.1
    done
    echo "nothing answered on :$1$2" >&2
    return 1
}

# The backend: the harness's own nginx config.
head -c 65536 /dev/zero | tr '\0' x >"$OUT/work/64k.bin"
sed -e "s#{workdir}#$OUT/work#g" -e "s#{backend_port}#$BACKEND#g" -e "s#{backend_h2c_port}#$((9003 + OFF))#g" \
    "$HARNESS/configs/nginx-backend.conf" >"$OUT/work/nginx.conf"
setsid taskset -c 0 nginx -p "$OUT/work" -c "$OUT/work/nginx.conf" >"$OUT/work/nginx.log" 2>&1 &
pids+=($!)
wait_http $BACKEND /

# The gateway, rendered from the benchmark template.
sed -e "s#{listen_host}#127.0.0.1#g" -e "s#{listen_port}#$LISTEN#g" \
    -e "s#{backend_url}#http://127.0.0.1:$BACKEND#g" \
    "$ROOT/benchmarks/gateway.hcl" >"$OUT/work/gateway.hcl"
gw_cmd="taskset -c 1 $ROOT/.venv/bin/a3s-gateway run --config $OUT/work/gateway.hcl --workers 1 --log-level warning"
setsid $gw_cmd >"$OUT/work/gateway.log" 2>&1 &
gw=$!
pids+=($gw)
wait_http $LISTEN /

taskset -c 0 wrk -t2 -c256 -d2s http://127.0.0.1:$LISTEN/ >/dev/null   # warm-up: grows the pool
spy_cmd="taskset -c 0 $ROOT/.venv/bin/py-spy record --pid $gw --rate $RATE --duration $SECONDS_ --nonblocking --format raw --output $OUT/profile.txt"
wrk_cmd="taskset -c 0 wrk -t2 -c64 -d${SECONDS_}s --latency http://127.0.0.1:$LISTEN/"
$spy_cmd >"$OUT/work/py-spy.log" 2>&1 &
spy=$!
sleep 0.5
$wrk_cmd >"$OUT/wrk.txt"
wait "$spy"
printf 'gateway: %s\nprofiler: %s\nload: %s\n' "$gw_cmd" "$spy_cmd" "$wrk_cmd" >"$OUT/command.txt"
echo "[bench] profile: $OUT/profile.txt" >&2
