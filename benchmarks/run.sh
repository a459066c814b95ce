#!/usr/bin/env bash
# `make bench`: a3s-gateway against nginx and the pure-Python h11 relay, on this machine.
#
# 1. installs what the harness needs (Debian packages; psutil/uvloop/h11/py-spy in our .venv);
# 2. copies the shared harness (../shared/bench, read-only) to benchmarks/.work/bench, where it
#    may write its results (benchmarks/.work/ is git-ignored);
# 3. run "pinned": the harness's default topology (load generator and backends on CPU 0, the
#    target alone on CPU 1): a3s (1 worker), nginx (1 worker), h11py;
# 4. run "two-cpus": the same with --proxy-cpus 0,1 (load still on CPU 0) for a3s with 1 and
#    with 2 workers, nginx and h11py: the worker-scaling comparison;
# 5. profile: py-spy samples one 1-worker gateway (pinned) under a fixed wrk run;
#    cpucost: µs of CPU per proxied request, a3s vs h11py (benchmarks/cpucost.py);
#    ssecost: µs of CPU per relayed SSE event, a3s vs h11py (benchmarks/cpucost.py --sse);
#    llmcost: CPU added by OpenAI <-> Anthropic conversion, per request and per streamed event
#    (benchmarks/llmcost.py, over the demo backend);
#    llmlatency: per-event latency of 100 concurrent 100-event streams (a steady state), plain and
#    converted, against direct (benchmarks/llmlatency.py): with normal scheduling, then SCHED_FIFO
#    where chrt is permitted (other jobs do not queue in front of it), then with every stream's
#    events in step (bursts);
#    routecost: µs of CPU per POSTed chat request, model_router vs plain proxying (cpucost.py --body);
#    tcprelay: TCP relay GiB/s (and per CPU-second) and RSS per idle relayed connection (1,000),
#    a3s vs HAProxy in mode tcp (benchmarks/tcprelay.py);
#    udprelay: UDP datagrams per CPU-second with 1,000 sessions, a3s (asyncio+uvloop and trio) vs
#    nginx's stream module (benchmarks/udprelay.py);
#    routeindex: route lookup with 10 / 1,000 / 10,000 routers (benchmarks/routeindex.py, in
#    process: no ports);
#    compilecost: CPU of `compile --check` and of a running gateway's reload, 10,000 routers
#    (benchmarks/compilecost.py; issues 17 and 18: under 2 s each);
#    prefixcache: prefix cache hit rate and time to first token over demo replicas simulating a
#    prefix cache, prefix-cache against round-robin and least-connections (benchmarks/prefixcache.py);
# 6. writes docs/benchmarks.md from the three (benchmarks/report.py).
# The code measured is a snapshot of compiler/, runtime/ and stdlib/ taken at the start (see
# snapshot_code), so that edits made in the tree during the run do not mix into it.
#
# Environment knobs (all optional):
#   BENCH_ROUNDS=3       rounds per harness run (>= 3 for numbers worth quoting)
#   BENCH_QUICK=1        smoke test: the harness's --quick (1 round, 3 s runs)
#   BENCH_INSTALL_ONLY=1 install the packages (HAProxy for benchmarks/tcprelay.py too) and stop
#   BENCH_RUNS="pinned two-cpus profile cpucost ssecost llmcost llmlatency routecost tcprelay udprelay routeindex compilecost prefixcache"   which steps to run (a step not run is reported from
#                        the newest earlier run found in benchmarks/.work/, if any); `cachecost`, not run
#                        by default, measures a `cache` hit against a proxied request (docs/cache.md)
#   BENCH_SRC=../shared/bench              where the harness lives
#   BENCH_PORT_OFFSET="0 1000"             port offsets to try (the first whose ports are free)
#   BENCH_WAIT_LOAD=1.5  before each step, wait for the 1-minute load average to fall below
#                        this (0 = never wait), BENCH_WAIT_MAX=1200 s at most over all steps
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_SRC=${BENCH_SRC:-$ROOT/../shared/bench}
WORK=$ROOT/benchmarks/.work
HARNESS=$WORK/bench
PY=$ROOT/.venv/bin/python
ROUNDS=${BENCH_ROUNDS:-3}
RUNS=${BENCH_RUNS:-pinned two-cpus profile cpucost ssecost llmcost llmlatency routecost tcprelay udprelay routeindex compilecost prefixcache}
WAIT_LOAD=${BENCH_WAIT_LOAD:-1.5}
WAIT_MAX=${BENCH_WAIT_MAX:-1200}

log() { echo "[bench] $*" >&2; }

install_system_packages() {
    local missing=() pair
    for pair in nginx:nginx wrk:wrk h2load:nghttp2-client taskset:util-linux ps:procps haproxy:haproxy; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_python_packages() {
    [ -x "$PY" ] || { echo "no $PY: run 'make bench' (it creates the venv)" >&2; exit 1; }
    # The harness itself needs psutil; its h11py reference needs h11 and uvloop; the profile
    # step needs py-spy.  Everything else in its requirements.txt serves targets we do not run.
    if ! "$PY" -c "import psutil, uvloop, h11" 2>/dev/null || [ ! -x "$ROOT/.venv/bin/py-spy" ]; then
        log "installing psutil uvloop h11 py-spy into .venv"
        "$PY" -m pip install -q psutil uvloop h11 py-spy
    fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port_offset() {
    # The harness's ports are fixed (9001-9003 backends, 9100/9101 target) and it refuses to
    # start when one is taken.  On a machine shared with other jobs that may be the case, so
    # the scratch copy can be shifted by a whole offset (ports do not change what is measured).
    local off p busy
    for off in ${BENCH_PORT_OFFSET:-0 1000 2000 3000}; do
        busy=0
        for p in 9001 9002 9003 9100 9101; do
            port_busy $((p + off)) && busy=1
        done
        if [ $busy -eq 0 ]; then
            PORT_OFFSET=$off
            [ "$off" -eq 0 ] || log "harness ports 9001-9003/9100-9101 busy: using them + $off"
            return
        fi
    done
    echo "the harness ports (9001-9003, 9100-9101, and +1000/+2000/+3000) are all busy" >&2
    exit 1
}

copy_harness() {
    [ -f "$BENCH_SRC/bench.py" ] || { echo "no harness at $BENCH_SRC" >&2; exit 1; }
    mkdir -p "$HARNESS"
    # Refresh the harness files, keep earlier raw results (results/raw/<stamp>/).
    tar -C "$BENCH_SRC" --exclude=./results/raw --exclude=./.venv -cf - . | tar -C "$HARNESS" -xf -
    if [ "$PORT_OFFSET" -ne 0 ]; then
        sed -i -E \
            -e "s/^BACKEND_PORT, SSE_PORT, BACKEND_H2C_PORT = .*/BACKEND_PORT, SSE_PORT, BACKEND_H2C_PORT = $((9001 + PORT_OFFSET)), $((9002 + PORT_OFFSET)), $((9003 + PORT_OFFSET))/" \
            -e "s/^LISTEN_PORT, H2C_PORT = .*/LISTEN_PORT, H2C_PORT = $((9100 + PORT_OFFSET)), $((9101 + PORT_OFFSET))/" \
            "$HARNESS/bench.py"
        grep -q "^LISTEN_PORT, H2C_PORT = $((9100 + PORT_OFFSET))," "$HARNESS/bench.py" \
            || { echo "could not shift the harness ports" >&2; exit 1; }
    fi
    echo "$PORT_OFFSET" >"$WORK/port-offset"
}

WAITED=0  # seconds spent waiting for a quiet machine, over all steps (budget: WAIT_MAX)
wait_for_quiet() {
    [ "$WAIT_LOAD" = "0" ] && return
    local load
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" -v m="$WAIT_LOAD" 'BEGIN { exit !(l < m) }'; then
            log "load average $load < $WAIT_LOAD"
            return
        fi
        if [ "$WAITED" -ge "$WAIT_MAX" ]; then
            log "load average $load, waited ${WAITED}s in all: measuring anyway (see the background CPU tables)"
            return
        fi
        log "load average $load >= $WAIT_LOAD: waiting (${WAITED}s of ${WAIT_MAX}s so far)"
        sleep 30
        WAITED=$((WAITED + 30))
    done
}

harness() {  # harness NAME ARGS...: one harness run; its raw dir is recorded in $WORK/NAME.dir
    local name=$1
    shift
    # h2: h2load speaks h2c with prior knowledge to the gateway's HTTP entrypoint (the same port:
    # the connection preface selects HTTP/2, docs/protocols.md), `h2c` in targets.toml.
    # --start-timeout: two workers import everything twice; on a loaded machine that takes >20 s.
    local opts=(--targets-file "$ROOT/benchmarks/targets.toml" --rounds "$ROUNDS" --tests small,large,h2,sse,mem
        --start-timeout 60)
    [ -n "${BENCH_QUICK:-}" ] && opts+=(--quick)
    wait_for_quiet
    log "harness run '$name': bench.py ${opts[*]} $*"
    local before
    before=$(ls "$HARNESS/results/raw" 2>/dev/null | sort | tail -n1 || true)
    (ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; "$PY" "$HARNESS/bench.py" "${opts[@]}" "$@" \
        >"$WORK/$name.md")
    local after
    after=$(ls "$HARNESS/results/raw" | sort | tail -n1)
    [ "$after" != "$before" ] || { echo "harness run '$name' left no results" >&2; exit 1; }
    echo "$HARNESS/results/raw/$after" >"$WORK/$name.dir"
    printf '%s\n' "bench.py ${opts[*]} $*" >"$WORK/$name.cmd"
}

snapshot_code() {
    # Measure one fixed version of the code: a copy of compiler/, runtime/ and stdlib/ as they
    # are now (working tree, uncommitted changes included), imported instead of the editable
    # install through PYTHONPATH (inherited by every target and worker process).  Edits made
    # while the benchmark runs (other sessions work in this tree) cannot leak into later rounds.
    local snap=$WORK/snapshot/a3s_gateway
    rm -rf "$WORK/snapshot"
    mkdir -p "$snap"
    : >"$snap/__init__.py"
    cp -a compiler runtime stdlib "$snap/"
    find "$snap" -name __pycache__ -prune -exec rm -rf {} +
    export PYTHONPATH=$WORK/snapshot${PYTHONPATH:+:$PYTHONPATH}
    "$PY" -c "import a3s_gateway.runtime.gateway as g, sys; sys.exit(0 if g.__file__.startswith('$WORK/snapshot') else 1)" \
        || { echo "the code snapshot is not what gets imported" >&2; exit 1; }
    {
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
        echo "uncommitted: $(git status --short -- compiler runtime stdlib 2>/dev/null | wc -l) files in compiler/ runtime/ stdlib/"
        echo "snapshot: $(date '+%Y-%m-%d %H:%M:%S')"
    } >"$WORK/code.txt"
}

install_system_packages
install_python_packages
# BENCH_INSTALL_ONLY=1: the packages above and nothing else (what benchmarks/tcprelay.py needs).
[ -n "${BENCH_INSTALL_ONLY:-}" ] && exit 0
mkdir -p "$WORK"
pick_port_offset
copy_harness
snapshot_code

for step in $RUNS; do
    case $step in
        pinned) harness pinned --only a3s,nginx,h11py ;;
        two-cpus) harness two-cpus --only a3s,a3s-2w,nginx,h11py --proxy-cpus 0,1 ;;
        profile)
            wait_for_quiet
            PORT_OFFSET=$PORT_OFFSET bash "$ROOT/benchmarks/profile.sh" "$HARNESS" "$WORK/profile"
            ;;
        cpucost)
            # µs of CPU per proxied request, a3s vs h11py (robust to other jobs' load).
            sed -e "s/{listen_host}:{listen_port}/127.0.0.1:$((9600 + PORT_OFFSET))/" \
                -e "s#{backend_url}#http://127.0.0.1:$((9501 + PORT_OFFSET))#" \
                benchmarks/gateway.hcl >"$WORK/cpucost-gateway.hcl"
            cpucost_cmd=(benchmarks/cpucost.py --rounds 5 --seconds 5 --port-base $((9500 + PORT_OFFSET))
                "a3s=$ROOT/.venv/bin/a3s-gateway run --config $WORK/cpucost-gateway.hcl --log-level warning"
                "h11py={python} $HARNESS/proxies/h11_proxy.py --listen {listen} --backend {backend}")
            wait_for_quiet
            "$PY" "${cpucost_cmd[@]}" >"$WORK/cpucost.md"
            printf '%q ' .venv/bin/python "${cpucost_cmd[@]}" >"$WORK/cpucost.cmd"
            ;;
        ssecost)
            # µs of CPU per relayed SSE event, a3s vs h11py (same backend and client as the harness).
            sed -e "s/{listen_host}:{listen_port}/127.0.0.1:$((9600 + PORT_OFFSET))/" \
                -e "s#{backend_url}#http://127.0.0.1:$((9502 + PORT_OFFSET))#" \
                benchmarks/gateway.hcl >"$WORK/ssecost-gateway.hcl"
            ssecost_cmd=(benchmarks/cpucost.py --sse --rounds 3 --port-base $((9500 + PORT_OFFSET))
                "a3s=$ROOT/.venv/bin/a3s-gateway run --config $WORK/ssecost-gateway.hcl --log-level warning"
                "h11py={python} $HARNESS/proxies/h11_proxy.py --listen {listen} --backend {backend}")
            wait_for_quiet
            "$PY" "${ssecost_cmd[@]}" >"$WORK/ssecost.md"
            printf '%q ' .venv/bin/python "${ssecost_cmd[@]}" >"$WORK/ssecost.cmd"
            ;;
        routecost)
            # µs of CPU per chat request routed by its model (model_router) against plain proxying.
            for conf in gateway model-router; do
                sed -e "s/{listen_host}:{listen_port}/127.0.0.1:$((9600 + PORT_OFFSET))/" \
                    -e "s#{backend_url}#http://127.0.0.1:$((9501 + PORT_OFFSET))#" \
                    "benchmarks/$conf.hcl" >"$WORK/routecost-$conf.hcl"
            done
            routecost_cmd=(benchmarks/cpucost.py --rounds 5 --seconds 5 --port-base $((9500 + PORT_OFFSET))
                --body benchmarks/chat-request.json
                "proxy=$ROOT/.venv/bin/a3s-gateway run --config $WORK/routecost-gateway.hcl --log-level warning"
                "model_router=$ROOT/.venv/bin/a3s-gateway run --config $WORK/routecost-model-router.hcl --log-level warning")
            wait_for_quiet
            "$PY" "${routecost_cmd[@]}" >"$WORK/routecost.md"
            printf '%q ' .venv/bin/python "${routecost_cmd[@]}" >"$WORK/routecost.cmd"
            ;;
        routeindex)
            # µs of CPU per route lookup against the number of routers.
            routeindex_cmd=(benchmarks/routeindex.py --rounds 5)
            wait_for_quiet
            "$PY" "${routeindex_cmd[@]}" >"$WORK/routeindex.md"
            printf '%q ' .venv/bin/python "${routeindex_cmd[@]}" >"$WORK/routeindex.cmd"
            ;;
        compilecost)
            # CPU of `compile --check` and of a reload, 10,000 routers (issues 17 and 18: < 2 s).
            compilecost_cmd=(benchmarks/compilecost.py --rounds 5)
            wait_for_quiet
            "$PY" "${compilecost_cmd[@]}" >"$WORK/compilecost.md"
            printf '%q ' .venv/bin/python "${compilecost_cmd[@]}" >"$WORK/compilecost.cmd"
            ;;
        prefixcache)
            # Prefix cache hit rate and time to first token: prefix-cache vs round-robin and least-connections.
            prefixcache_cmd=(benchmarks/prefixcache.py --rounds 3 --port-base $((9900 + PORT_OFFSET)))
            wait_for_quiet
            "$PY" "${prefixcache_cmd[@]}" >"$WORK/prefixcache.md"
            printf '%q ' .venv/bin/python "${prefixcache_cmd[@]}" >"$WORK/prefixcache.cmd"
            ;;
        llmcost)
            # CPU added by protocol conversion (llm-convert) over plain proxying, demo backend.
            llmcost_cmd=(benchmarks/llmcost.py --rounds 5 --calls --port-base $((9700 + PORT_OFFSET)))
            wait_for_quiet
            "$PY" "${llmcost_cmd[@]}" >"$WORK/llmcost.md"
            printf '%q ' .venv/bin/python "${llmcost_cmd[@]}" >"$WORK/llmcost.cmd"
            ;;
        llmlatency)
            # Per-event latency added by the gateway, plain and converted (issue 15: p99 <= 1 ms).
            llmlatency_cmd=(benchmarks/llmlatency.py --rounds 5 --port-base $((9800 + PORT_OFFSET)))
            llmlatency_runs=("")
            chrt -f 10 true 2>/dev/null && llmlatency_runs+=(--realtime)
            llmlatency_runs+=("${llmlatency_runs[-1]} --aligned")
            wait_for_quiet
            : >"$WORK/llmlatency.md"
            : >"$WORK/llmlatency.cmd"
            for extra in "${llmlatency_runs[@]}"; do
                # shellcheck disable=SC2086 # $extra: zero, one or two options
                { "$PY" "${llmlatency_cmd[@]}" $extra; echo; } >>"$WORK/llmlatency.md"
                # shellcheck disable=SC2086
                { printf '%q ' .venv/bin/python "${llmlatency_cmd[@]}" $extra; echo; } >>"$WORK/llmlatency.cmd"
            done
            ;;
        cachecost)
            # µs of CPU per request: proxied, proxied through a `headers` middleware that makes the
            # response cacheable, and answered from the `cache` middleware (benchmarks/cache.hcl).
            for variant in plain cache headers; do
                src=benchmarks/gateway.hcl
                [ "$variant" = plain ] || src=benchmarks/cache.hcl
                sed -e "s/{listen_host}:{listen_port}/127.0.0.1:$((9600 + PORT_OFFSET))/" \
                    -e "s#{backend_url}#http://127.0.0.1:$((9501 + PORT_OFFSET))#" "$src" >"$WORK/cachecost-$variant.hcl"
            done
            sed -i 's/middlewares = \["cache", "cacheable"\]/middlewares = ["cacheable"]/' "$WORK/cachecost-headers.hcl"
            cachecost_cmd=(benchmarks/cpucost.py --rounds 5 --seconds 5 --port-base $((9500 + PORT_OFFSET)))
            for variant in plain headers cache; do
                cachecost_cmd+=("$variant=$ROOT/.venv/bin/a3s-gateway run --config $WORK/cachecost-$variant.hcl --log-level warning")
            done
            wait_for_quiet
            "$PY" "${cachecost_cmd[@]}" >"$WORK/cachecost.md"
            printf '%q ' .venv/bin/python "${cachecost_cmd[@]}" >"$WORK/cachecost.cmd"
            ;;
        tcprelay)
            # TCP relay throughput and RSS per idle relayed connection, a3s vs HAProxy (mode tcp).
            tcprelay_cmd=(benchmarks/tcprelay.py --idle 1000 --port-base $((9720 + PORT_OFFSET)))
            if [ -n "${BENCH_QUICK:-}" ]; then tcprelay_cmd+=(--seconds 2 --rounds 1); else tcprelay_cmd+=(--seconds 5 --rounds 3); fi
            wait_for_quiet
            (ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; "$PY" "${tcprelay_cmd[@]}" >"$WORK/tcprelay.md")
            printf '%q ' .venv/bin/python "${tcprelay_cmd[@]}" >"$WORK/tcprelay.cmd"
            ;;
        udprelay)
            # UDP datagrams per CPU-second with 1,000 sessions, a3s (uvloop, trio) vs nginx's stream module.
            udprelay_cmd=(benchmarks/udprelay.py --sessions 1000 --trio --port-base $((9710 + PORT_OFFSET)))
            if [ -n "${BENCH_QUICK:-}" ]; then udprelay_cmd+=(--seconds 2 --rounds 1); else udprelay_cmd+=(--seconds 5 --rounds 5); fi
            wait_for_quiet
            (ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; "$PY" "${udprelay_cmd[@]}" >"$WORK/udprelay.md")
            printf '%q ' .venv/bin/python "${udprelay_cmd[@]}" >"$WORK/udprelay.cmd"
            ;;
        *) echo "unknown step '$step' in BENCH_RUNS" >&2; exit 2 ;;
    esac
done

"$PY" "$ROOT/benchmarks/report.py" --work "$WORK" --out "$ROOT/docs/benchmarks.md"
log "wrote docs/benchmarks.md"
