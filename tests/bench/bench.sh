#!/usr/bin/env bash
# Benchmarks of the node (whtunnel) and client (whclient) against baselines
# measured in the same run. Prints figures and ratios; asserts nothing. About
# 12 minutes (15 with the Go pair); results and method: docs/benchmarks.md. The
# suite runs every part once, tiny (tests/integration/test_bench.py).
#
#   tests/bench/bench.sh [--part NAME]... [--repeat N] [--duration S] [--workers N]
#                        [--registrations N] [--idle-workers N] [--viewers N]
#                        [--slow-seconds S] [--file-mib N] [--no-install] [--no-netns]
#                        [--access-log]
#
# Parts (default: all, in this order):
#   http        small keep-alive requests: wrk against nginx directly, nginx as a
#               keep-alive reverse proxy, our node + whclient (and the Go pair)
#   throughput  one-stream 1 GiB download and 256 MiB upload, direct vs tunnel
#   memory      node RSS per idle connected worker (whload workers)
#   ws          WebSocket echo round trip, direct vs tunnel
#   slow        node RSS while a rate-limited viewer downloads 1 GiB
#   cluster     two nodes sharing a redis-server: small requests and a 1 GiB download
#               through the node that holds the worker vs through the other one (relayed);
#               and through HAProxy in TCP mode in front of the owner: what one more process
#               that only copies bytes costs on this machine, the floor of any relay
#   tls         part http's requests and a one-stream 1 GiB download over HTTPS: nginx
#               terminating TLS as a reverse proxy vs a node on a TLS port (whclient on
#               wss://), same self-signed certificate, TLS 1.3 TLS_AES_128_GCM_SHA256 only
#   cost        CPU-seconds (utime + stime) of the node + whclient per 100,000 small
#               requests and per GiB downloaded and uploaded, vs nginx proxy for the same work
#   register    registrations per second on a fresh node (whload: C, 256 handshakes in
#               flight, tokens checked), plain and TLS; node and whload CPU per 1,000
#   idle        --idle-workers idle workers on one node: RSS per worker, time to register
#               them, and part http's small requests to one real worker before and with them
#   streams     --viewers concurrent viewers of one worker (whclient + nginx) each fetching a
#               64 KiB file over and over (wrk): failures, req/s, peak RSS; vs nginx proxy
#
# Options:
#   --repeat N        runs of each measurement; the median is reported (default 3)
#   --duration S      seconds per wrk run (default 10)
#   --workers N       idle workers for the memory part (default 1000, at most 19000; over
#                     9000 the node gets WHT_MAX_WORKERS and WHT_MAX_CONNECTIONS that fit
#                     the hard open-files limit, which must be about N + 1000)
#   --registrations N registrations per run of part register (default 10000, at most 19000)
#   --idle-workers N  idle workers of part idle (default 15000, at most 19000)
#   --viewers N       concurrent viewers of part streams (default 1000, at most 5000)
#   --slow-seconds S  bound of the slow-viewer download (default 60)
#   --file-mib N      size of the download file in MiB (default 1024); uploads are a
#                     quarter of it (256 MiB); the suite runs every part tiny with this
#   --no-install      do not run deploy/install-deps.sh --bench
#   --no-netns        stay in this network namespace (default: a private one made
#                     with unshare -n, loopback only, when that works)
#   --access-log      nodes log at level info, so with an access line per request
#                     (default: level warn, no access lines; metrics are always on)
#
# Environment:
#   WHT_BUILD_DIR     build with node/whtunnel, client/whclient and tests/bench/whload (default
#                     build-bench; configured Release and built when missing)
#   WHT_GO_SERVER     optional: the original Go server (websocktunnel), built by hand
#   WHT_GO_CLIENT     optional: the original Go client (wst-client), built by hand
#
# Everything listens on 127.0.0.1 ephemeral ports (the Go server listens on
# every interface: one more reason for the private network namespace). Every
# wait has a deadline, every loop a bound; all processes are stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
WSB="$HERE/wsbench.py"

PARTS=()
REPEAT=3
DURATION=10
WORKERS=1000
REGS=10000
IDLE=15000
VIEWERS=1000
SLOW_SECONDS=60
FILE_MIB=1024
INSTALL=1
NETNS=1
NODE_LOG_LEVEL=warn
ARGS=("$@")

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0" | sed 's/^# \{0,1\}//'; } # the header comment
while [ $# -gt 0 ]; do
    case "$1" in
    --part) PARTS+=("${2:?--part needs a name}"); shift 2 ;;
    --part=*) PARTS+=("${1#*=}"); shift ;;
    --repeat) REPEAT=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --workers) WORKERS=${2:?}; shift 2 ;;
    --registrations) REGS=${2:?}; shift 2 ;;
    --idle-workers) IDLE=${2:?}; shift 2 ;;
    --viewers) VIEWERS=${2:?}; shift 2 ;;
    --slow-seconds) SLOW_SECONDS=${2:?}; shift 2 ;;
    --file-mib) FILE_MIB=${2:?}; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --no-netns) NETNS=0; shift ;;
    --access-log) NODE_LOG_LEVEL=info; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[ ${#PARTS[@]} -eq 0 ] && PARTS=(http throughput memory ws slow cluster tls cost register idle streams)
for p in "${PARTS[@]}"; do
    case "$p" in http|throughput|memory|ws|slow|cluster|tls|cost|register|idle|streams) ;; *) echo "bench.sh: unknown part '$p'" >&2; exit 2 ;; esac
done
num_in() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
num_in "$REPEAT" 1 20 || { echo "bench.sh: --repeat must be 1..20" >&2; exit 2; }
num_in "$DURATION" 1 120 || { echo "bench.sh: --duration must be 1..120" >&2; exit 2; }
num_in "$WORKERS" 1 19000 || { echo "bench.sh: --workers must be 1..19000" >&2; exit 2; }
num_in "$REGS" 1 19000 || { echo "bench.sh: --registrations must be 1..19000" >&2; exit 2; }
num_in "$IDLE" 1 19000 || { echo "bench.sh: --idle-workers must be 1..19000" >&2; exit 2; }
num_in "$VIEWERS" 1 5000 || { echo "bench.sh: --viewers must be 1..5000" >&2; exit 2; }
num_in "$SLOW_SECONDS" 1 300 || { echo "bench.sh: --slow-seconds must be 1..300" >&2; exit 2; }
num_in "$FILE_MIB" 4 4096 || { echo "bench.sh: --file-mib must be 4..4096" >&2; exit 2; }
FILE_BYTES=$((FILE_MIB << 20))
UP_BYTES=$((FILE_MIB << 18)) # a quarter
FILE_DESC=$([ "$FILE_MIB" = 1024 ] && echo "1 GiB" || echo "$FILE_MIB MiB")
UP_DESC="$((FILE_MIB / 4)) MiB"
want() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

# ---- set-up outside the namespace: packages, build --------------------------------------------

BUILD=${WHT_BUILD_DIR:-$ROOT/build-bench}
if [ -z "${WHT_BENCH_INNER:-}" ]; then
    if [ "$INSTALL" = 1 ]; then
        "$ROOT/deploy/install-deps.sh" --bench
    fi
    if [ ! -x "$BUILD/node/whtunnel" ] || [ ! -x "$BUILD/client/whclient" ] || [ ! -x "$BUILD/tests/bench/whload" ]; then
        echo "bench.sh: building $BUILD" >&2
        [ -f "$BUILD/CMakeCache.txt" ] ||
            cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
        cmake --build "$BUILD" -j2 --target whtunnel whclient whload >/dev/null
    fi
    if [ "$NETNS" = 1 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
        && unshare -n true 2>/dev/null; then
        export WHT_BENCH_INNER=netns WHT_BUILD_DIR="$BUILD"
        exec unshare -n -- "$0" "${ARGS[@]}"
    fi
    export WHT_BENCH_INNER=host
fi
if [ "$WHT_BENCH_INNER" = netns ]; then
    ip link set lo up
fi
# thousands of sockets (parts memory, register, idle, streams): every process started here gets
# the hard open-files limit (whtunnel and whload raise their own anyway)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for t in nginx wrk curl openssl "$PY" $(want cluster && echo redis-server haproxy); do
    command -v "$t" >/dev/null || { echo "bench.sh: $t is missing (deploy/install-deps.sh --bench)" >&2; exit 1; }
done
WHTUNNEL="$BUILD/node/whtunnel"
WHCLIENT="$BUILD/client/whclient"
WHLOAD="$BUILD/tests/bench/whload"
GO_SERVER=${WHT_GO_SERVER:-}
GO_CLIENT=${WHT_GO_CLIENT:-}
GO=0
if [ -n "$GO_SERVER" ] || [ -n "$GO_CLIENT" ]; then
    if [ -x "$GO_SERVER" ] && [ -x "$GO_CLIENT" ]; then
        GO=1
    else
        echo "bench.sh: WHT_GO_SERVER and WHT_GO_CLIENT must both name executables; Go runs skipped" >&2
    fi
fi

# ---- processes and clean-up -------------------------------------------------------------------

DIR=$(mktemp -d /tmp/wht-bench.XXXXXX)
if SHM=$(mktemp -d /dev/shm/wht-bench.XXXXXX 2>/dev/null); then :; else SHM="$DIR/shm-dir"; mkdir "$SHM"; fi
ln -s "$SHM" "$DIR/shm"
PIDS=()

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    rm -rf "$DIR" "$SHM"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# start NAME CMD...: runs CMD in the background, output to $DIR/NAME.log; sets LAST_PID.
start() {
    local name=$1
    shift
    "$@" >"$DIR/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
stop() {
    local pid=$1 i keep=()
    stop_pid "$pid"
    for i in "${PIDS[@]}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
    PIDS=("${keep[@]}")
}
# run_bg OUT CMD...: runs CMD with its output in OUT, in the background so that a signal
# interrupts the wait at once (the EXIT trap then stops CMD with the rest)
run_bg() {
    local out=$1 pid rc=0
    shift
    "$@" >"$out" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    PIDS=("${PIDS[@]:0:${#PIDS[@]}-1}")
    return "$rc"
}
free_port() { "$PY" "$WSB" port; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # PORT PID WHAT
    local i
    for i in $(seq 200); do
        port_open "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench.sh: $3 did not listen on port $1; its log:" >&2
    tail -20 "$DIR/$3.log" >&2 || true
    exit 1
}
wait_file() { # FILE PID WHAT: waits for a non-empty file
    local i
    for i in $(seq 200); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench.sh: $3 did not get ready; its log:" >&2
    tail -20 "$DIR/$3.log" >&2 || true
    exit 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# cpu_ticks PID [sys]: CPU ticks of PID, utime + stime (with "sys": stime alone)
cpu_ticks() { awk -v k="${2:-}" '{print (k == "sys" ? 0 : $14) + $15}' "/proc/$1/stat"; }
# tree_ticks PID [sys]: CPU ticks of PID and of its children (nginx: the master and its worker)
tree_ticks() {
    local t=0 c
    for c in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        t=$((t + $(cpu_ticks "$c" "${2:-}" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# median of the numbers on stdin (one per line)
# col N FILE: column N of FILE (nothing when FILE is missing)
col() { if [ -s "$2" ]; then awk -v c="$1" '{print $c}' "$2"; fi; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# paired A_FILE B_FILE COL: per-run ratios A/B of column COL (runs are interleaved, so run i of A
# and run i of B saw the same machine state), then their median: "r1 r2 r3 (median m)"
paired() {
    local rs
    rs=$(paste <(col "$3" "$1") <(col "$3" "$2") | awk '$2 + 0 > 0 {printf "%.2f\n", $1 / $2}')
    [ -n "$rs" ] || { echo "-"; return; }
    echo "$(echo "$rs" | tr '\n' ' ')(median $(echo "$rs" | median))"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0 || a == "nan") print "-"; else printf "%.2fx", a / b}'; }
# verdict A OP B: "met" when A OP B holds (OP: >= or <=), else "not met"; "-" without both figures.
# The targets are issue 12's (performance, second round); docs/benchmarks.md has them.
verdict() {
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        if (a == "" || b == "" || a == "nan" || b == "nan" || a == "-" || b == "-") print "-";
        else if (op == ">=" ? a + 0 >= b + 0 : a + 0 <= b + 0) print "met"; else print "not met"}'
}
# over A B: A / B as a number ("nan" when B is 0)
over() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0 || a == "nan") print "nan"; else printf "%.4f", a / b}'; }

SECRET=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SECRET_B=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
token() { TASKCLUSTER_PROXY_SECRET_A=$SECRET "$WHTUNNEL" token --id "$1" --ttl 2h; }

# ---- the services -----------------------------------------------------------------------------

BACKEND_PORT=
start_backend() { # nginx: /small, /files/1g (sparse, --file-mib), PUT /upload/
    [ -n "$BACKEND_PORT" ] && return 0
    mkdir -p "$SHM/www/files" "$SHM/www/upload" "$SHM/body" "$DIR/tmp"
    chmod 0755 "$SHM" "$SHM/www" "$SHM/www/files" # nginx workers may run as www-data
    chmod 0777 "$SHM/www/upload" "$SHM/body"
    truncate -s "$FILE_BYTES" "$SHM/www/files/1g"
    BACKEND_PORT=$(free_port)
    sed -e "s#@PORT@#$BACKEND_PORT#g" -e "s#@DIR@#$DIR#g" -e "s#@SHM@#$SHM#g" "$HERE/nginx-backend.conf.in" >"$DIR/nginx-backend.conf"
    start nginx-backend nginx -c "$DIR/nginx-backend.conf" -e "$DIR/nginx-backend.err"
    wait_port "$BACKEND_PORT" "$LAST_PID" nginx-backend
}

PROXY_PORT=
start_proxy() {
    [ -n "$PROXY_PORT" ] && return 0
    start_backend
    PROXY_PORT=$(free_port)
    ECHO_PORT=${ECHO_PORT:-$(free_port)} # the WebSocket echo server of part 4, started there
    sed -e "s#@PORT@#$PROXY_PORT#g" -e "s#@BACKEND@#$BACKEND_PORT#g" -e "s#@ECHO@#$ECHO_PORT#g" -e "s#@DIR@#$DIR#g" \
        "$HERE/nginx-proxy.conf.in" >"$DIR/nginx-proxy.conf"
    start nginx-proxy nginx -c "$DIR/nginx-proxy.conf" -e "$DIR/nginx-proxy.err"
    PROXY_PID=$LAST_PID
    wait_port "$PROXY_PORT" "$LAST_PID" nginx-proxy
}

# start_node NAME [VAR=VALUE]...: a node on a free port (with those settings); sets NODE_PORT
# and NODE_PID (variables set on the call, such as TLS_KEY=... start_node NAME, reach the
# node's environment too). WHT_MAX_CONNECTIONS + WHT_MAX_WORKERS + 256 must fit in the
# open-files limit (20,000 here), or the node lowers both (node/main.c)
start_node() {
    local name=$1
    shift
    NODE_PORT=$(free_port)
    start "$name" env PORT="$NODE_PORT" WHT_LISTEN_ADDR=127.0.0.1 TASKCLUSTER_PROXY_SECRET_A="$SECRET" \
        TASKCLUSTER_PROXY_SECRET_B="$SECRET_B" WHT_LOG_LEVEL="$NODE_LOG_LEVEL" ENV=development "$@" "$WHTUNNEL"
    NODE_PID=$LAST_PID
    wait_port "$NODE_PORT" "$NODE_PID" "$name"
}
# start_whload NAME PORT COUNT PREFIX [whload option]...: whload registers COUNT workers on the
# node at 127.0.0.1:PORT and holds them (until stopped, at most 10 minutes); its stdout in
# $DIR/NAME.out; sets WL_PID
start_whload() {
    local name=$1 port=$2 count=$3 prefix=$4
    shift 4
    : >"$DIR/$name.out" # here, not in the background job: wait_ready must not see an earlier run's line
    "$WHLOAD" workers --nodes "127.0.0.1:$port" --count "$count" --secret "$SECRET" --prefix "$prefix" \
        --hold 600 --timeout 120 "$@" >"$DIR/$name.out" 2>"$DIR/$name.err" </dev/null &
    WL_PID=$!
    PIDS+=("$WL_PID")
}
# wait_ready NAME PID: waits (at most 130 s) until whload NAME printed its ready line; prints it
wait_ready() {
    local i line
    for i in $(seq 1300); do
        line=$(grep -m1 '^ready ' "$DIR/$1.out" 2>/dev/null || true)
        [ -n "$line" ] && { echo "$line"; return 0; }
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench.sh: $1: not every worker registered: $(tail -5 "$DIR/$1.err") $(tail -1 "$DIR/$1.out")" >&2
    exit 1
}
# kv KEY LINE: the value of KEY=VALUE in LINE
kv() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# warm_whload PORT [whload option]...: 20 registrations that come and go, so that the code
# paths they use are paged in before a "before" figure
warm_whload() {
    local port=$1
    shift
    timeout 60 "$WHLOAD" workers --nodes "127.0.0.1:$port" --count 20 --secret "$SECRET" --prefix warm \
        --hold 0 --timeout 30 "$@" </dev/null >/dev/null 2>"$DIR/warm.err" ||
        { echo "bench.sh: warm-up registrations failed: $(cat "$DIR/warm.err")" >&2; exit 1; }
}
# start_client NAME NODE_PORT ID TARGET_PORT [ARG...]: whclient (ws://, or $CLIENT_SCHEME set on
# the call), with these extra arguments; waits until it printed its URL
start_client() {
    rm -f "$DIR/$1.url" # left by an earlier run of the same name
    start "$1" "$WHCLIENT" "${CLIENT_SCHEME:-ws}://127.0.0.1:$2" "$3" "$4" --token "$(token "$3")" --log-level warn \
        --out-file "$DIR/$1.url" "${@:5}"
    CLIENT_PID=$LAST_PID
    wait_file "$DIR/$1.url" "$CLIENT_PID" "$1"
}
# start_go_server NAME: sets GO_PORT and GO_PID
start_go_server() {
    GO_PORT=$(free_port)
    start "$1" env -u TLS_KEY -u TLS_CERTIFICATE PORT="$GO_PORT" URL_PREFIX="http://127.0.0.1:$GO_PORT" \
        TASKCLUSTER_PROXY_SECRET_A="$SECRET" TASKCLUSTER_PROXY_SECRET_B="$SECRET_B" "$GO_SERVER"
    GO_PID=$LAST_PID
    wait_port "$GO_PORT" "$GO_PID" "$1"
}
start_go_client() { # NAME GO_PORT ID TARGET_PORT
    start "$1" "$GO_CLIENT" "http://127.0.0.1:$2" "$3" "$4" --token "$(token "$3")" --out-file "$DIR/$1.url"
    wait_file "$DIR/$1.url" "$LAST_PID" "$1"
}

TUNNEL_UP=0
start_tunnels() { # node A + whclient "bench" -> nginx backend; Go pair likewise
    [ "$TUNNEL_UP" = 1 ] && return 0
    start_backend
    start_node node
    MAIN_NODE_PORT=$NODE_PORT
    MAIN_NODE_PID=$NODE_PID
    start_client whclient "$MAIN_NODE_PORT" bench "$BACKEND_PORT"
    MAIN_CLIENT_PID=$CLIENT_PID
    if [ "$GO" = 1 ]; then
        start_go_server go-server
        MAIN_GO_PORT=$GO_PORT
        start_go_client go-client "$MAIN_GO_PORT" bench "$BACKEND_PORT"
    fi
    TUNNEL_UP=1
}

# ---- header -----------------------------------------------------------------------------------

echo "webhooktunnel benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
    "$(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools: $(nginx -v 2>&1 | sed 's/.*: //'), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}')," \
    "curl $(curl --version | awk 'NR == 1 {print $2}'), $("$PY" --version)"
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
echo "build: $BUILD ($(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)), source ${SRC:-unknown}" \
    "($(git -C "${SRC:-/nonexistent}" describe --always --dirty 2>/dev/null || echo 'not a git tree')), whtunnel built $(date -u -r "$WHTUNNEL" '+%Y-%m-%d %H:%M UTC')"
echo "network namespace: $WHT_BENCH_INNER; repeat: $REPEAT (medians reported); Go pair: $([ "$GO" = 1 ] && echo yes || echo no)"
echo

# ---- 1. small keep-alive requests -------------------------------------------------------------

# run_wrk URL [CONNECTIONS]: prints "rps p50_us p99_us errors requests" (errors: non-2xx answers
# and socket errors: connect, read, write, timeout). A run that completed no request at all
# (seen over TLS on a starved machine: wrk's 50 handshakes took the whole second) is said on
# stderr and run once more
run_wrk() {
    local try
    for try in 1 2; do
        run_bg "$DIR/wrk.out" wrk -t1 -c"${2:-50}" -d"${DURATION}s" --timeout 5s --latency "$1" || true
        grep -Eq '^ *[1-9][0-9]* requests in ' "$DIR/wrk.out" && break
        { echo "bench.sh: wrk completed no request on $1 (try $try of 2):"; sed 's/^/  /' "$DIR/wrk.out"; } >&2
    done
    awk '
        function us(v) {
            if (v ~ /us$/) return v + 0
            if (v ~ /ms$/) return v * 1000
            if (v ~ /m$/) return v * 60e6
            if (v ~ /s$/) return v * 1e6
            return v
        }
        $1 == "50%" {p50 = us($2)}
        $1 == "99%" {p99 = us($2)}
        /^Requests\/sec:/ {rps = $2}
        /Non-2xx/ {err += $NF}
        /Socket errors/ {gsub(",", ""); err += $4 + $6 + $8 + $10}
        / requests in / {n = $1}
        END {printf "%s %s %s %d %d\n", rps + 0, p50 + 0, p99 + 0, err + 0, n + 0}' "$DIR/wrk.out"
}

part_http() {
    start_proxy
    start_tunnels
    local names=(direct nginx-proxy whtunnel) urls=("http://127.0.0.1:$BACKEND_PORT/small"
        "http://127.0.0.1:$PROXY_PORT/small" "http://127.0.0.1:$MAIN_NODE_PORT/bench/small")
    if [ "$GO" = 1 ]; then
        names+=(go)
        urls+=("http://127.0.0.1:$MAIN_GO_PORT/bench/small")
    fi
    echo "== 1. small keep-alive requests: wrk -t1 -c50 -d${DURATION}s --latency, GET of a 13-byte body"
    local i r n
    for i in "${!names[@]}"; do # warm-up, and a check that the path answers 200
        local code
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${urls[$i]}" || true)
        [ "$code" = 200 ] || { echo "bench.sh: ${urls[$i]} answered $code" >&2; exit 1; }
        wrk -t1 -c50 -d1s "${urls[$i]}" >/dev/null 2>&1 || true
    done
    for r in $(seq "$REPEAT"); do # runs interleaved, so that slow drifts hit every path alike
        for i in "${!names[@]}"; do
            local node_cpu0 client_cpu0 line
            node_cpu0=$(cpu_ticks "$MAIN_NODE_PID")
            client_cpu0=$(cpu_ticks "$MAIN_CLIENT_PID")
            run_wrk "${urls[$i]}" >"$DIR/wrk.line"
            line=$(cat "$DIR/wrk.line")
            echo "$line" >>"$DIR/http.${names[$i]}"
            if [ "${names[$i]}" = whtunnel ]; then
                echo "$(($(cpu_ticks "$MAIN_NODE_PID") - node_cpu0)) $(($(cpu_ticks "$MAIN_CLIENT_PID") - client_cpu0))" \
                    >>"$DIR/http.cpu"
            fi
            printf '   run %d %-12s %s\n' "$r" "${names[$i]}" \
                "$(echo "$line" | awk '{printf "%8.0f req/s  p50 %6.0f us  p99 %6.0f us  errors %d", $1, $2, $3, $4}')"
        done
    done
    local base_rps base_p99 proxy_rps proxy_p99
    base_rps=$(col 1 "$DIR/http.direct" | median)
    base_p99=$(col 3 "$DIR/http.direct" | median)
    proxy_rps=$(col 1 "$DIR/http.nginx-proxy" | median)
    proxy_p99=$(col 3 "$DIR/http.nginx-proxy" | median)
    printf '   %-12s %10s %9s %10s %9s %9s %13s  %s\n' path "req/s" "vs direct" "vs nginx-p" "p50 us" "p99 us" \
        "p99 - direct" "runs (req/s)"
    for n in "${names[@]}"; do
        local rps p50 p99 runs
        rps=$(col 1 "$DIR/http.$n" | median)
        p50=$(col 2 "$DIR/http.$n" | median)
        p99=$(col 3 "$DIR/http.$n" | median)
        runs=$(awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' "$DIR/http.$n")
        [ "$n" = whtunnel ] && echo "1. small requests: whtunnel $(printf %.0f "$rps") req/s = $(ratio "$rps" "$proxy_rps") nginx-proxy (target >= 1.00x: $(verdict "$(over "$rps" "$proxy_rps")" ">=" 1)), $(ratio "$rps" "$base_rps") direct; p99 added over direct $(awk -v a="$p99" -v b="$base_p99" 'BEGIN {printf "%+.0f", a - b}') us, nginx-proxy's $(awk -v a="$proxy_p99" -v b="$base_p99" 'BEGIN {printf "%+.0f", a - b}') us (target: no more: $(verdict "$p99" "<=" "$proxy_p99"))" >>"$DIR/summary"
        printf '   %-12s %10.0f %9s %10s %9.0f %9.0f %13s  %s\n' "$n" "$rps" "$(ratio "$rps" "$base_rps")" \
            "$(ratio "$rps" "$proxy_rps")" "$p50" "$p99" "$(awk -v a="$p99" -v b="$base_p99" 'BEGIN {printf "%+.0f us", a - b}')" "$runs"
    done
    local pr
    pr=$(paired "$DIR/http.whtunnel" "$DIR/http.nginx-proxy" 1)
    echo "   whtunnel / nginx-proxy req/s, run by run: $pr"
    echo "   (paired per run: $pr)" >>"$DIR/summary"
    local t=$((DURATION * $(getconf CLK_TCK))) # clock ticks per run
    awk -v t="$t" '{n += $1; c += $2} END {printf "   whtunnel path CPU (mean of runs): node %.0f%%, whclient %.0f%% of one core\n", n / NR * 100 / t, c / NR * 100 / t}' "$DIR/http.cpu"
    echo "   target: whtunnel >= 1.00x nginx-proxy, and p99 added over direct no more than nginx-proxy's"
}

# ---- 2. throughput ----------------------------------------------------------------------------

XFER_CURL=() # extra curl options of xfer (part tls: --cacert)
# xfer NAME URL down|up: one curl transfer (at most 20 s); appends MiB/s to $DIR/NAME.DIR (a
# transfer cut by the time limit counts with the bytes it moved, and is marked partial); prints
# a line about it (FAILED for a curl error, another status, or a short body)
xfer() {
    local name=$1 url=$2 dir=$3 out code size t rc=0
    if [ "$dir" = down ]; then
        run_bg "$DIR/curl.out" curl -s "${XFER_CURL[@]}" -o /dev/null --max-time 20 \
            -w '%{http_code} %{size_download} %{time_total}' "$url" || rc=$?
        out=$(cat "$DIR/curl.out")
        read -r code size t <<<"$out"
        if [ "$code" = 200 ] && [ "$size" = "$FILE_BYTES" ]; then rc=0; elif [ "$rc" = 0 ]; then rc=1; fi
    else
        run_bg "$DIR/curl.out" curl -s "${XFER_CURL[@]}" -o /dev/null --max-time 20 -H 'Expect:' -T "$SHM/up.bin" \
            -w '%{http_code} %{size_upload} %{time_total}' "$url" || rc=$?
        out=$(cat "$DIR/curl.out")
        read -r code size t <<<"$out"
        if { [ "$code" = 201 ] || [ "$code" = 204 ]; } && [ "$size" = "$UP_BYTES" ]; then rc=0; elif [ "$rc" = 0 ]; then rc=1; fi
    fi
    if [ "$rc" = 0 ] || { [ "$rc" = 28 ] && [ "${size:-0}" -gt 0 ]; }; then
        awk -v b="$size" -v t="$t" 'BEGIN {print b / 1048576 / t}' >>"$DIR/$name.$dir"
        [ "$rc" = 28 ] && echo partial >"$DIR/$name.$dir.partial"
        awk -v b="$size" -v t="$t" -v p="$([ "$rc" = 28 ] && echo ' (cut at 20 s)')" \
            'BEGIN {printf "%4.0f MiB in %5.2f s = %5.0f MiB/s%s", b / 1048576, t, b / 1048576 / t, p}'
    else
        printf 'FAILED (curl %s: %s)' "$rc" "$out"
    fi
}

part_throughput() {
    start_proxy
    start_tunnels
    local names=(direct nginx-proxy whtunnel) bases=("http://127.0.0.1:$BACKEND_PORT"
        "http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$MAIN_NODE_PORT/bench")
    if [ "$GO" = 1 ]; then
        names+=(go)
        bases+=("http://127.0.0.1:$MAIN_GO_PORT/bench")
    fi
    head -c "$UP_BYTES" /dev/urandom >"$SHM/up.bin"
    echo "== 2. one-stream throughput: curl GET of a $FILE_DESC file to /dev/null; curl PUT of $UP_DESC (nginx WebDAV); 20 s limit"
    local r i n
    for r in $(seq "$REPEAT"); do
        for i in "${!names[@]}"; do
            local n0 c0 d u
            n0=$(cpu_ticks "$MAIN_NODE_PID")
            c0=$(cpu_ticks "$MAIN_CLIENT_PID")
            xfer "${names[$i]}" "${bases[$i]}/files/1g" down >"$DIR/xfer.line"
            d=$(cat "$DIR/xfer.line")
            [ "${names[$i]}" = whtunnel ] &&
                echo "$(($(cpu_ticks "$MAIN_NODE_PID") - n0)) $(($(cpu_ticks "$MAIN_CLIENT_PID") - c0))" >>"$DIR/cpu.down"
            n0=$(cpu_ticks "$MAIN_NODE_PID")
            c0=$(cpu_ticks "$MAIN_CLIENT_PID")
            xfer "${names[$i]}" "${bases[$i]}/upload/${names[$i]}" up >"$DIR/xfer.line"
            u=$(cat "$DIR/xfer.line")
            [ "${names[$i]}" = whtunnel ] &&
                echo "$(($(cpu_ticks "$MAIN_NODE_PID") - n0)) $(($(cpu_ticks "$MAIN_CLIENT_PID") - c0))" >>"$DIR/cpu.up"
            printf '   run %d %-12s down %s; up %s\n' "$r" "${names[$i]}" "$d" "$u"
        done
    done
    rm -f "$SHM/up.bin" "$SHM"/www/upload/*
    local down0 up0 downp upp
    down0=$(col 1 "$DIR/direct.down" | median)
    up0=$(col 1 "$DIR/direct.up" | median)
    downp=$(col 1 "$DIR/nginx-proxy.down" | median)
    upp=$(col 1 "$DIR/nginx-proxy.up" | median)
    printf '   %-12s %14s %9s %10s %14s %9s %10s\n' path "download MiB/s" "vs direct" "vs nginx-p" "upload MiB/s" \
        "vs direct" "vs nginx-p"
    for n in "${names[@]}"; do
        local d u
        d=$(col 1 "$DIR/$n.down" | median)
        u=$(col 1 "$DIR/$n.up" | median)
        [ "$n" = whtunnel ] && echo "2. one stream: whtunnel download $(printf %.0f "$d") MiB/s = $(ratio "$d" "$downp") nginx-proxy (target >= 1.50x: $(verdict "$(over "$d" "$downp")" ">=" 1.5)), $(ratio "$d" "$down0") direct; upload $(printf %.0f "$u") MiB/s = $(ratio "$u" "$upp") nginx-proxy (target >= 1.00x: $(verdict "$(over "$u" "$upp")" ">=" 1)), $(ratio "$u" "$up0") direct" >>"$DIR/summary"
        printf '   %-12s %14.0f %9s %10s %14.0f %9s %10s%s\n' "$n" "$d" "$(ratio "$d" "$down0")" "$(ratio "$d" "$downp")" \
            "$u" "$(ratio "$u" "$up0")" "$(ratio "$u" "$upp")" \
            "$( [ -e "$DIR/$n.down.partial" ] || [ -e "$DIR/$n.up.partial" ] && echo '  (some runs cut at 20 s)')"
    done
    local pd pu
    pd=$(paired "$DIR/whtunnel.down" "$DIR/nginx-proxy.down" 1)
    pu=$(paired "$DIR/whtunnel.up" "$DIR/nginx-proxy.up" 1)
    echo "   whtunnel / nginx-proxy, run by run: download $pd; upload $pu"
    echo "   (paired per run, vs nginx-proxy: download $pd; upload $pu)" >>"$DIR/summary"
    local hz
    hz=$(getconf CLK_TCK)
    for d in down up; do
        [ -s "$DIR/cpu.$d" ] || continue
        paste "$DIR/cpu.$d" "$DIR/whtunnel.$d" | awk -v hz="$hz" -v d="$d" -v mib="$([ "$d" = down ] && echo "$FILE_MIB" || echo $((FILE_MIB / 4)))" '
            {n += $1; c += $2; t += mib / $3} END {printf "   whtunnel %s: CPU per run node %.2f s, whclient %.2f s (transfer %.2f s)\n", d, n / NR / hz, c / NR / hz, t / NR}'
    done
    echo "   target: whtunnel download >= 1.50x nginx-proxy, upload >= 1.00x nginx-proxy"
}

# ---- 3. memory per idle worker ----------------------------------------------------------------

# idle_rss NAME PORT PID: registers $WORKERS idle workers; writes "before after" (KiB) to $DIR/NAME.res
idle_rss() {
    local before after i a
    # warm-up: the code and libraries that registrations use are paged in (several MiB of
    # file-backed RSS) before the "before" figure
    warm_whload "$2"
    sleep 1
    before=$(rss_kib "$3")
    # 64 handshakes in flight, as wsbench.py had: the buffers of the handshakes in flight stay in
    # the heap's high-water mark, 0.8 KiB per worker of 1,000 more with whload's default 256
    start_whload "$1-workers" "$2" "$WORKERS" idle --concurrency 64
    local wk_pid=$WL_PID
    wait_ready "$1-workers" "$wk_pid" >/dev/null
    for i in $(seq 20); do # settle: the same RSS twice, 0.25 s apart
        a=$(rss_kib "$3")
        sleep 0.25
        [ "$a" = "$(rss_kib "$3")" ] && break
    done
    sleep 1
    after=$(rss_kib "$3")
    stop "$wk_pid"
    echo "$before $after" >"$DIR/$1.res"
}

part_memory() {
    echo "== 3. node memory per idle connected worker: $WORKERS registrations (whload workers), VmRSS before/after"
    local r
    for r in $(seq "$REPEAT"); do
        start_node mem-node WHT_MAX_WORKERS=$((WORKERS + 100)) WHT_MAX_CONNECTIONS=600
        local res
        idle_rss mem-node "$NODE_PORT" "$NODE_PID"
        res=$(cat "$DIR/mem-node.res")
        echo "$res" >>"$DIR/mem.whtunnel"
        stop "$NODE_PID"
        printf '   run %d %-10s RSS %s KiB -> %s KiB\n' "$r" whtunnel "${res% *}" "${res#* }"
        if [ "$GO" = 1 ]; then
            start_go_server mem-go
            idle_rss mem-go "$GO_PORT" "$GO_PID"
            res=$(cat "$DIR/mem-go.res")
            echo "$res" >>"$DIR/mem.go"
            stop "$GO_PID"
            printf '   run %d %-10s RSS %s KiB -> %s KiB\n' "$r" go "${res% *}" "${res#* }"
        fi
    done
    printf '   %-10s %12s %12s %16s\n' server "RSS before" "RSS after" "per worker"
    local n
    for n in whtunnel go; do
        [ -s "$DIR/mem.$n" ] || continue
        local b a p
        b=$(col 1 "$DIR/mem.$n" | median)
        a=$(col 2 "$DIR/mem.$n" | median)
        p=$(awk -v w="$WORKERS" '{print ($2 - $1) / w}' "$DIR/mem.$n" | median) # median of per-run values
        [ "$n" = whtunnel ] && echo "3. idle workers: node RSS $(printf %.2f "$p") KiB per worker ($WORKERS workers) (the target, <= 2 KiB per worker, is at 15,000: part idle)" >>"$DIR/summary"
        printf '   %-10s %8.0f KiB %8.0f KiB %12.2f KiB\n' "$n" "$b" "$a" "$p"
    done
    echo "   target: <= 2 KiB per idle worker at 15,000 workers (part idle measures it there)"
}

# ---- 4. WebSocket round trip ------------------------------------------------------------------

part_ws() {
    start_proxy
    start_tunnels
    start ws-echo "$PY" "$WSB" echo "$ECHO_PORT"
    wait_port "$ECHO_PORT" "$LAST_PID" ws-echo
    start_client whclient-ws "$MAIN_NODE_PORT" wsecho "$ECHO_PORT"
    local names=(direct nginx-proxy whtunnel) urls=("ws://127.0.0.1:$ECHO_PORT/"
        "ws://127.0.0.1:$PROXY_PORT/wsecho/" "ws://127.0.0.1:$MAIN_NODE_PORT/wsecho/")
    if [ "$GO" = 1 ]; then
        start_go_client go-client-ws "$MAIN_GO_PORT" wsecho "$ECHO_PORT"
        names+=(go)
        urls+=("ws://127.0.0.1:$MAIN_GO_PORT/wsecho/")
    fi
    echo "== 4. WebSocket round trip: 32-byte binary message and its echo, one connection per path, 2000 rounds"
    echo "   (after 200 warm-up rounds), each round one message per path in a random order"
    local r i n
    for r in $(seq "$REPEAT"); do
        run_bg "$DIR/rtt.out" timeout 120 "$PY" "$WSB" rtt "${urls[@]}" --count 2000 --warmup 200 --timeout 60 ||
            { echo "bench.sh: rtt failed: $(cat "$DIR/rtt.out")" >&2; exit 1; }
        for i in "${!names[@]}"; do
            local line
            line=$(grep -F " url=${urls[$i]} " "$DIR/rtt.out")
            echo "$line" | sed 's/[a-z0-9_]*=//g' | awk '{print $4, $5, $6}' >>"$DIR/rtt.${names[$i]}"
            printf '   run %d %-12s %s\n' "$r" "${names[$i]}" "${line/url=${urls[$i]} /}"
        done
    done
    local m0 p0 l0 nm np
    m0=$(col 1 "$DIR/rtt.direct" | median)
    p0=$(col 2 "$DIR/rtt.direct" | median)
    l0=$(col 3 "$DIR/rtt.direct" | median)
    printf '   %-12s %10s %10s %10s %14s %14s %14s\n' path "median us" "p99 us" "min us" "added median" "added p99" \
        "added min"
    for n in "${names[@]}"; do
        local m p l am ap al
        m=$(col 1 "$DIR/rtt.$n" | median)
        p=$(col 2 "$DIR/rtt.$n" | median)
        l=$(col 3 "$DIR/rtt.$n" | median)
        # what the path adds to the direct round trip: median, p99, min
        am=$(awk -v a="$m" -v b="$m0" 'BEGIN {print a - b}')
        ap=$(awk -v a="$p" -v b="$p0" 'BEGIN {print a - b}')
        al=$(awk -v a="$l" -v b="$l0" 'BEGIN {print a - b}')
        # nginx-proxy's row comes before whtunnel's
        [ "$n" = nginx-proxy ] && nm=$am np=$ap
        [ "$n" = whtunnel ] && echo "4. WebSocket round trip added by the tunnel: $(printf %.0f "$am") us median = $(ratio "$am" "$nm") nginx-proxy's $(printf %.0f "$nm") us (target <= 2x: $(verdict "$(over "$am" "$nm")" "<=" 2)), $(printf %.0f "$ap") us p99 = $(ratio "$ap" "$np") nginx-proxy's $(printf %.0f "$np") us (target <= 2x: $(verdict "$(over "$ap" "$np")" "<=" 2))" >>"$DIR/summary"
        printf '   %-12s %10.1f %10.1f %10.1f %11.1f us %11.1f us %11.1f us\n' "$n" "$m" "$p" "$l" "$am" "$ap" "$al"
    done
    echo "   target: whtunnel adds no more than 2x what nginx-proxy adds, median and p99"
}

# ---- 5. slow viewer ---------------------------------------------------------------------------

# slow_run NAME PID URL: curl --limit-rate 20M for at most SLOW_SECONDS; samples the RSS of PID
# (and of PID2) every second; writes "start max end bytes seconds start2 max2" to $DIR/NAME.res
slow_run() {
    local name=$1 pid=$2 url=$3 pid2=$4
    local start_rss max end s2 m2 i
    sleep 0.5
    start_rss=$(rss_kib "$pid")
    max=$start_rss
    s2=$(rss_kib "$pid2")
    m2=$s2
    curl -s -o /dev/null --limit-rate 20M --max-time "$SLOW_SECONDS" -w '%{size_download} %{time_total}' \
        "$url" >"$DIR/$name.curl" 2>/dev/null &
    local curl_pid=$!
    PIDS+=("$curl_pid")
    : >"$DIR/$name.samples"
    for i in $(seq $((SLOW_SECONDS + 5))); do
        sleep 1
        local v
        v=$(rss_kib "$pid")
        echo "$v" >>"$DIR/$name.samples"
        [ "$v" -gt "$max" ] && max=$v
        v=$(rss_kib "$pid2")
        [ "$v" -gt "$m2" ] && m2=$v
        kill -0 "$curl_pid" 2>/dev/null || break
    done
    stop "$curl_pid"
    end=$(rss_kib "$pid")
    echo "$start_rss $max $end $(cat "$DIR/$name.curl") $s2 $m2" >"$DIR/$name.res"
}

part_slow() {
    start_backend
    echo "== 5. slow viewer: curl --limit-rate 20M of a $FILE_DESC file through the tunnel (at most ${SLOW_SECONDS}s), VmRSS sampled every second"
    start_node slow-node
    start_client slow-client "$NODE_PORT" slow "$BACKEND_PORT"
    local res
    slow_run slow-whtunnel "$NODE_PID" "http://127.0.0.1:$NODE_PORT/slow/files/1g" "$CLIENT_PID"
    res=$(cat "$DIR/slow-whtunnel.res")
    stop "$CLIENT_PID"
    stop "$NODE_PID"
    echo "$res" | awk '{printf "   whtunnel: node RSS start %d KiB, max %d KiB, end %d KiB (max - start %+d KiB); whclient RSS start %d KiB, max %d KiB; %.0f MiB in %.1f s (%.1f MiB/s)\n", $1, $2, $3, $2 - $1, $6, $7, $4 / 1048576, $5, $4 / 1048576 / $5}'
    echo "   samples (KiB): $(tr '\n' ' ' <"$DIR/slow-whtunnel.samples")"
    echo "$res" | awk '{printf "5. slow viewer: node RSS max %d KiB, %+d KiB over its start, while %.0f MiB went by at %.1f MiB/s (target: flat)\n", $2, $2 - $1, $4 / 1048576, $4 / 1048576 / $5}' >>"$DIR/summary"
    if [ "$GO" = 1 ]; then
        start_go_server slow-go
        start_go_client slow-go-client "$GO_PORT" slow "$BACKEND_PORT"
        local gocl=$LAST_PID
        slow_run slow-go "$GO_PID" "http://127.0.0.1:$GO_PORT/slow/files/1g" "$gocl"
        res=$(cat "$DIR/slow-go.res")
        echo "$res" | awk '{printf "   go:       server RSS start %d KiB, max %d KiB, end %d KiB (max - start %+d KiB); wst-client RSS start %d KiB, max %d KiB; %.0f MiB in %.1f s (%.1f MiB/s)\n", $1, $2, $3, $2 - $1, $6, $7, $4 / 1048576, $5, $4 / 1048576 / $5}'
        echo "   samples (KiB): $(tr '\n' ' ' <"$DIR/slow-go.samples")"
        stop "$gocl"
        stop "$GO_PID"
    fi
    echo "   target: node RSS flat (bounded by the stream window and session buffer, not by the body)"
}

# ---- 6. cluster: relayed vs local ---------------------------------------------------------------

part_cluster() {
    start_backend
    echo "== 6. cluster: redis-server + nodes A and B; whclient on A; wrk -t1 -c50 -d${DURATION}s and a $FILE_DESC download, via A (local), via B (relayed A <- B) and via HAProxy in TCP mode in front of A (l4: the floor of any relay)"
    local rport csecret
    rport=$(free_port)
    csecret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    start redis redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no
    wait_port "$rport" "$LAST_PID" redis
    local ports=() pids=() n
    for n in a b; do
        local port
        port=$(free_port)
        start "cluster-$n" env PORT="$port" WHT_LISTEN_ADDR=127.0.0.1 TASKCLUSTER_PROXY_SECRET_A="$SECRET" \
            WHT_LOG_LEVEL=warn REDIS_URL="redis://127.0.0.1:$rport" WHT_NODE_ID="bench-$n" \
            WHT_PEER_ADDR=127.0.0.1:0 WHT_CLUSTER_SECRET="$csecret" "$WHTUNNEL"
        wait_port "$port" "$LAST_PID" "cluster-$n"
        ports+=("$port")
        pids+=("$LAST_PID")
    done
    start_client cluster-client "${ports[0]}" cbench "$BACKEND_PORT"
    # one process, one thread, that copies bytes between a viewer's connection and its own
    # connection to A: no parsing, no multiplexing; what the relaying node costs beyond it is
    # the relay's own
    local l4port
    l4port=$(free_port)
    printf '%s\n' "global" "    nbthread 1" "    maxconn 4096" "defaults" "    mode tcp" \
        "    timeout connect 5s" "    timeout client 300s" "    timeout server 300s" \
        "listen l4" "    bind 127.0.0.1:$l4port" "    server a 127.0.0.1:${ports[0]}" >"$DIR/haproxy-l4.cfg"
    start haproxy-l4 haproxy -f "$DIR/haproxy-l4.cfg" -db
    wait_port "$l4port" "$LAST_PID" haproxy-l4
    pids+=("$LAST_PID")
    ports+=("$l4port")
    local i code
    for i in $(seq 100); do # B learns the route from Redis within moments
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:${ports[1]}/cbench/small" || true)
        [ "$code" = 200 ] && break
        sleep 0.1
    done
    [ "$code" = 200 ] || { echo "bench.sh: the relayed path answered $code" >&2; exit 1; }
    local names=(local relayed l4) r
    for i in 0 1 2; do wrk -t1 -c50 -d1s "http://127.0.0.1:${ports[$i]}/cbench/small" >/dev/null 2>&1 || true; done
    for r in $(seq "$REPEAT"); do
        for i in 0 1 2; do
            run_wrk "http://127.0.0.1:${ports[$i]}/cbench/small" >>"$DIR/cluster.${names[$i]}"
            local t0 t1 bytes
            t0=$(date +%s.%N)
            bytes=$(curl -s -o /dev/null -w '%{size_download}' --max-time 120 "http://127.0.0.1:${ports[$i]}/cbench/files/1g" || echo 0)
            t1=$(date +%s.%N)
            awk -v b="$bytes" -v a="$t0" -v c="$t1" 'BEGIN {printf "%.1f\n", b / 1048576 / (c - a)}' >>"$DIR/cluster.${names[$i]}.mibs"
            printf '   run %d %-8s %s, %s download %s MiB/s\n' "$r" "${names[$i]}" \
                "$(tail -1 "$DIR/cluster.${names[$i]}" | awk '{printf "%8.0f req/s  p50 %6.0f us  p99 %6.0f us  errors %d", $1, $2, $3, $4}')" \
                "$FILE_DESC" "$(tail -1 "$DIR/cluster.${names[$i]}.mibs")"
        done
    done
    local lr rr fr lp rp lm rm fm
    lr=$(col 1 "$DIR/cluster.local" | median)
    rr=$(col 1 "$DIR/cluster.relayed" | median)
    fr=$(col 1 "$DIR/cluster.l4" | median)
    lp=$(col 3 "$DIR/cluster.local" | median)
    rp=$(col 3 "$DIR/cluster.relayed" | median)
    lm=$(median <"$DIR/cluster.local.mibs")
    rm=$(median <"$DIR/cluster.relayed.mibs")
    fm=$(median <"$DIR/cluster.l4.mibs")
    echo "   local:   $(printf %.0f "$lr") req/s, p99 $(printf %.0f "$lp") us, $lm MiB/s"
    echo "   relayed: $(printf %.0f "$rr") req/s = $(ratio "$rr" "$lr") local, p99 $(printf %.0f "$rp") us ($(awk -v a="$rp" -v b="$lp" 'BEGIN {printf "%+.0f us", a - b}')), $rm MiB/s = $(ratio "$rm" "$lm") local"
    echo "   l4:      $(printf %.0f "$fr") req/s = $(ratio "$fr" "$lr") local, $fm MiB/s = $(ratio "$fm" "$lm") local (HAProxy TCP in front of A)"
    echo "6. cluster: relayed $(printf %.0f "$rr") req/s = $(ratio "$rr" "$lr") local (target >= 0.85x: $(verdict "$(over "$rr" "$lr")" ">=" 0.85)), p99 $(awk -v a="$rp" -v b="$lp" 'BEGIN {printf "%+.0f", a - b}') us; download $rm MiB/s = $(ratio "$rm" "$lm") local (target >= 0.85x: $(verdict "$(over "$rm" "$lm")" ">=" 0.85)); floor of any relay (HAProxy TCP in front of A): $(ratio "$fr" "$lr") / $(ratio "$fm" "$lm")" >>"$DIR/summary"
    stop "$CLIENT_PID"
    for i in 0 1 2; do stop "${pids[$i]}"; done
}

# ---- 7. TLS: nginx terminating TLS vs the node's TLS port ---------------------------------------

TLS_CIPHER=TLS_AES_128_GCM_SHA256
TLS_UP=0
# start_tls_nginx NAME UPSTREAM: an nginx of $HERE/NAME.conf.in (@PORT@ a free port, @BACKEND@ the
# port UPSTREAM, @DIR@, @TLS@ the certificate directory); sets NGINX_PORT and NGINX_PID
start_tls_nginx() {
    NGINX_PORT=$(free_port)
    sed -e "s#@PORT@#$NGINX_PORT#g" -e "s#@BACKEND@#$2#g" -e "s#@DIR@#$DIR#g" -e "s#@TLS@#$TLS#g" \
        "$HERE/$1.conf.in" >"$DIR/$1.conf"
    start "$1" nginx -c "$DIR/$1.conf" -e "$DIR/$1.err"
    NGINX_PID=$LAST_PID
    wait_port "$NGINX_PORT" "$NGINX_PID" "$1"
}
# start_tls: a self-signed EC P-256 certificate for 127.0.0.1; an OpenSSL configuration allowing
# TLS 1.3 with $TLS_CIPHER only (the OPENSSL_CONF of the node, whclient, wrk and curl); nginx
# terminating TLS in front of the backend with that certificate (nginx-tls-proxy.conf.in pins
# the same), and nginx-tls2 asking it over HTTPS (nginx-tls-chain.conf.in); a node on a TLS port and a whclient on wss:// trusting the certificate (--ca)
start_tls() {
    [ "$TLS_UP" = 1 ] && return 0
    start_backend
    TLS="$DIR/tls"
    mkdir -p "$TLS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout "$TLS/key.pem" -out "$TLS/cert.pem" >"$DIR/openssl.log" 2>&1 ||
        { echo "bench.sh: openssl req failed: $(cat "$DIR/openssl.log")" >&2; exit 1; }
    printf '%s\n' "openssl_conf = openssl_init" "[openssl_init]" "ssl_conf = ssl_sect" "[ssl_sect]" \
        "system_default = system_default_sect" "[system_default_sect]" "MinProtocol = TLSv1.3" \
        "MaxProtocol = TLSv1.3" "Ciphersuites = $TLS_CIPHER" >"$TLS/openssl.cnf"
    start_tls_nginx nginx-tls-proxy "$BACKEND_PORT"
    TLS_PROXY_PORT=$NGINX_PORT
    TLS_PROXY_PID=$NGINX_PID
    start_tls_nginx nginx-tls-chain "$TLS_PROXY_PORT"
    TLS_CHAIN_PORT=$NGINX_PORT
    TLS_CHAIN_PID=$NGINX_PID
    TLS_KEY="$TLS/key.pem" TLS_CERTIFICATE="$TLS/cert.pem" OPENSSL_CONF="$TLS/openssl.cnf" start_node tls-node
    TLS_NODE_PORT=$NODE_PORT
    TLS_NODE_PID=$NODE_PID
    CLIENT_SCHEME=wss OPENSSL_CONF="$TLS/openssl.cnf" start_client tls-client "$TLS_NODE_PORT" tbench "$BACKEND_PORT" \
        --ca "$TLS/cert.pem"
    TLS_CLIENT_PID=$CLIENT_PID
    TLS_UP=1
}

# negotiated URL: "TLSv1.3 / CIPHER" as curl reports it, with the system's OpenSSL defaults (not
# pinned: what the server chose)
negotiated() {
    curl -sv --cacert "$TLS/cert.pem" --max-time 5 -o /dev/null "$1" 2>&1 |
        sed -n 's/^\* SSL connection using \(.*\)$/\1/p' | head -1
}

# path_ticks NAME [sys]: "a b", CPU ticks of the proxy of path NAME (nginx: master + worker, 0;
# the tunnels: node, whclient); with "sys", stime alone
path_ticks() {
    local k=${2:-}
    case "$1" in
    nginx-proxy) echo "$(tree_ticks "$PROXY_PID" "$k") 0" ;;
    nginx-tls) echo "$(tree_ticks "$TLS_PROXY_PID" "$k") 0" ;;
    nginx-tls2) echo "$(tree_ticks "$TLS_CHAIN_PID" "$k") $(tree_ticks "$TLS_PROXY_PID" "$k")" ;;
    whtunnel) echo "$(cpu_ticks "$MAIN_NODE_PID" "$k") $(cpu_ticks "$MAIN_CLIENT_PID" "$k")" ;;
    whtunnel-tls) echo "$(cpu_ticks "$TLS_NODE_PID" "$k") $(cpu_ticks "$TLS_CLIENT_PID" "$k")" ;;
    esac
}

part_tls() {
    start_proxy
    start_tunnels
    start_tls
    local names=(nginx-proxy whtunnel nginx-tls nginx-tls2 whtunnel-tls) bases=("http://127.0.0.1:$PROXY_PORT"
        "http://127.0.0.1:$MAIN_NODE_PORT/bench" "https://127.0.0.1:$TLS_PROXY_PORT"
        "https://127.0.0.1:$TLS_CHAIN_PORT" "https://127.0.0.1:$TLS_NODE_PORT/tbench")
    echo "== 7. TLS: wrk -t1 -c50 -d${DURATION}s GETs of a 13-byte body, and a one-stream $FILE_DESC download (curl, 20 s limit),"
    echo "   over HTTPS to nginx terminating TLS as a reverse proxy and to a node on a TLS port (whclient on wss://,"
    echo "   so the node also encrypts the worker link); the plain paths for reference; one self-signed EC P-256"
    echo "   certificate; OpenSSL $(openssl version | awk '{print $2}'), TLS 1.3 and $TLS_CIPHER only on every side;"
    echo "   nginx-tls2: the tunnel's shape built of nginx (TLS ends at one nginx, goes on over TLS to nginx-tls,"
    echo "   which asks the backend: two processes, two TLS legs, as node + whclient on wss://)"
    echo "   negotiated (curl, unpinned): nginx-tls $(negotiated "${bases[2]}/small"); whtunnel-tls $(negotiated "${bases[4]}/small")"
    local i r n
    for i in "${!names[@]}"; do
        local code
        code=$(curl -s --cacert "$TLS/cert.pem" -o /dev/null -w '%{http_code}' --max-time 5 "${bases[$i]}/small" || true)
        [ "$code" = 200 ] || { echo "bench.sh: ${bases[$i]}/small answered $code" >&2; exit 1; }
        OPENSSL_CONF="$TLS/openssl.cnf" wrk -t1 -c50 -d1s "${bases[$i]}/small" >/dev/null 2>&1 || true
    done
    XFER_CURL=(--cacert "$TLS/cert.pem")
    for r in $(seq "$REPEAT"); do
        for i in "${!names[@]}"; do
            local t0 t1 line d
            t0=$(path_ticks "${names[$i]}")
            OPENSSL_CONF="$TLS/openssl.cnf" run_wrk "${bases[$i]}/small" >"$DIR/wrk.line"
            t1=$(path_ticks "${names[$i]}")
            line=$(cat "$DIR/wrk.line")
            echo "$line" >>"$DIR/tls.${names[$i]}"
            echo "$t0 $t1" | awk '{print $3 - $1, $4 - $2}' >>"$DIR/tls.${names[$i]}.cpu"
            OPENSSL_CONF="$TLS/openssl.cnf" xfer "tls-${names[$i]}" "${bases[$i]}/files/1g" down >"$DIR/xfer.line"
            d=$(cat "$DIR/xfer.line")
            printf '   run %d %-12s %s; download %s\n' "$r" "${names[$i]}" \
                "$(echo "$line" | awk '{printf "%8.0f req/s  p50 %6.0f us  p99 %6.0f us  errors %d", $1, $2, $3, $4}')" "$d"
        done
    done
    XFER_CURL=()
    tls_table "${names[@]}"
}

# tls_table NAME...: part tls's table and summary
tls_table() {
    local base_rps base_d hz n
    base_rps=$(col 1 "$DIR/tls.nginx-tls" | median)
    base_d=$(col 1 "$DIR/tls-nginx-tls.down" | median)
    hz=$(getconf CLK_TCK)
    printf '   %-12s %10s %12s %9s %9s %14s %12s  %s\n' path "req/s" "vs nginx-tls" "p50 us" "p99 us" "download MiB/s" \
        "vs nginx-tls" "CPU-seconds per 100k requests"
    for n in "$@"; do
        local rps p50 p99 d cpu
        rps=$(col 1 "$DIR/tls.$n" | median)
        p50=$(col 2 "$DIR/tls.$n" | median)
        p99=$(col 3 "$DIR/tls.$n" | median)
        d=$(col 1 "$DIR/tls-$n.down" | median)
        # per run: ticks / requests (wrk's count), then the median of the runs
        cpu=$(paste "$DIR/tls.$n.cpu" "$DIR/tls.$n" | awk -v hz="$hz" '$7 > 0 {k = 1e5 / hz / $7;
            printf "%.6f %.6f %.6f\n", $1 * k, $2 * k, ($1 + $2) * k}' >"$DIR/tls.$n.per"
            a=$(col 1 "$DIR/tls.$n.per" | median) b=$(col 2 "$DIR/tls.$n.per" | median)
            c=$(col 3 "$DIR/tls.$n.per" | median)
            case "$n" in
            whtunnel*) printf 'node %.2f + whclient %.2f = %.2f' "$a" "$b" "$c" ;;
            nginx-tls2) printf 'nginx %.2f + nginx-tls %.2f = %.2f' "$a" "$b" "$c" ;;
            *) printf 'nginx %.2f' "$a" ;;
            esac)
        printf '   %-12s %10.0f %12s %9.0f %9.0f %14.0f %12s  %s\n' "$n" "$rps" "$(ratio "$rps" "$base_rps")" "$p50" "$p99" \
            "$d" "$(ratio "$d" "$base_d")" "$cpu"
    done
    local pr pd
    pr=$(paired "$DIR/tls.whtunnel-tls" "$DIR/tls.nginx-tls" 1)
    pd=$(paired "$DIR/tls-whtunnel-tls.down" "$DIR/tls-nginx-tls.down" 1)
    echo "   whtunnel-tls / nginx-tls, run by run: requests $pr; download $pd"
    echo "   whtunnel-tls / nginx-tls2 (the same shape), run by run: requests $(paired "$DIR/tls.whtunnel-tls" "$DIR/tls.nginx-tls2" 1);" \
        "download $(paired "$DIR/tls-whtunnel-tls.down" "$DIR/tls-nginx-tls2.down" 1)"
    echo "   TLS's cost, run by run: nginx-tls / nginx-proxy $(paired "$DIR/tls.nginx-tls" "$DIR/tls.nginx-proxy" 1);" \
        "whtunnel-tls / whtunnel $(paired "$DIR/tls.whtunnel-tls" "$DIR/tls.whtunnel" 1)"
    local rps d rps2 d2
    rps=$(col 1 "$DIR/tls.whtunnel-tls" | median)
    d=$(col 1 "$DIR/tls-whtunnel-tls.down" | median)
    rps2=$(col 1 "$DIR/tls.nginx-tls2" | median)
    d2=$(col 1 "$DIR/tls-nginx-tls2.down" | median)
    echo "7. TLS: whtunnel-tls $(printf %.0f "$rps") req/s = $(ratio "$rps" "$base_rps") nginx-tls (target >= 1.00x: $(verdict "$(over "$rps" "$base_rps")" ">=" 1)); download $(printf %.0f "$d") MiB/s = $(ratio "$d" "$base_d") nginx-tls; against nginx-tls2 (two nginx, TLS on both legs: the tunnel's shape) $(ratio "$rps" "$rps2") requests, $(ratio "$d" "$d2") download" >>"$DIR/summary"
    echo "   (paired per run: requests $pr; download $pd)" >>"$DIR/summary"
    echo "   target: whtunnel-tls >= 1.00x nginx-tls (requests)"
}

# ---- 8. cost: CPU-seconds per unit of work -----------------------------------------------------


part_cost() {
    start_proxy
    start_tunnels
    local names=(nginx-proxy whtunnel) bases=("http://127.0.0.1:$PROXY_PORT" "http://127.0.0.1:$MAIN_NODE_PORT/bench")
    echo "== 8. cost: CPU-seconds (utime + stime, /proc/PID/stat) of the proxy per 100,000 small requests (wrk -t1 -c50"
    echo "   -d${DURATION}s, divided by the requests wrk counted), per GiB downloaded ($FILE_DESC) and per GiB uploaded ($UP_DESC);"
    echo "   nginx-proxy counts its master and worker, whtunnel the node and whclient; the backend, wrk and curl are not counted"
    [ -s "$SHM/up.bin" ] || head -c "$UP_BYTES" /dev/urandom >"$SHM/up.bin"
    local i r
    for i in "${!names[@]}"; do wrk -t1 -c50 -d1s "${bases[$i]}/small" >/dev/null 2>&1 || true; done
    for r in $(seq "$REPEAT"); do
        for i in "${!names[@]}"; do
            local n=${names[$i]} t0 t1 s0 s1 code size t line
            t0=$(path_ticks "$n")
            s0=$(path_ticks "$n" sys)
            run_wrk "${bases[$i]}/small" >"$DIR/wrk.line"
            t1=$(path_ticks "$n")
            s1=$(path_ticks "$n" sys)
            line=$(cat "$DIR/wrk.line")
            echo "$(echo "$line" | awk '{print $5, $4}') $t0 $t1" | awk '{print $1, $5 - $3, $6 - $4, $2}' >>"$DIR/cost.$n.req"
            # the same run's stime alone: requests, then system ticks as above
            echo "$(echo "$line" | awk '{print $5}') $s0 $s1" | awk '{print $1, $4 - $2, $5 - $3}' >>"$DIR/cost.$n.reqsys"
            printf '   run %d %-12s %s\n' "$r" "$n" "$(echo "$line" | awk '{printf "%d requests, %d errors", $5, $4}')"
            local dir
            for dir in down up; do
                t0=$(path_ticks "$n")
                xfer "cost-$n" "${bases[$i]}$([ "$dir" = down ] && echo /files/1g || echo "/upload/cost-$n")" "$dir" \
                    >"$DIR/xfer.line"
                t1=$(path_ticks "$n")
                read -r code size t <"$DIR/curl.out" || true
                echo "${size:-0} $t0 $t1" | awk '{print $1, $4 - $2, $5 - $3}' >>"$DIR/cost.$n.$dir"
                printf '   run %d %-12s %-4s %s\n' "$r" "$n" "$dir" "$(cat "$DIR/xfer.line")"
            done
        done
    done
    rm -f "$SHM"/www/upload/*
    cost_table
}

# cost_runs FILE UNIT COL: per run, CPU-seconds (column COL: 2 or 3, or 0 for both) per UNIT
# units of work (column 1); runs that did no work are left out
cost_runs() {
    awk -v u="$2" -v c="$3" -v hz="$(getconf CLK_TCK)" '$1 > 0 {
        s = (c == 0 ? $2 + $3 : $c); printf "%.6f\n", s / hz / $1 * u}' "$1"
}
# cost_per FILE UNIT COL: the median of cost_runs ("nan" without a run)
cost_per() { cost_runs "$@" | median; }

cost_table() {
    local g=1073741824 p=nginx-proxy w=whtunnel
    printf '   %-24s %22s %20s %20s\n' "process" "CPU s / 100k requests" "CPU s / GiB down" "CPU s / GiB up"
    local row label f c
    for row in "$p 0 nginx-proxy" "$w 2 whtunnel-node" "$w 3 whtunnel-whclient" "$w 0 whtunnel-total"; do
        read -r f c label <<<"$row"
        printf '   %-24s %22.3f %20.3f %20.3f\n' "$label" "$(cost_per "$DIR/cost.$f.req" 100000 "$c")" \
            "$(cost_per "$DIR/cost.$f.down" "$g" "$c")" "$(cost_per "$DIR/cost.$f.up" "$g" "$c")"
    done
    local k rs=() runs=()
    for k in req down up; do
        local u=$g
        [ "$k" = req ] && u=100000
        rs+=("$(ratio "$(cost_per "$DIR/cost.$w.$k" "$u" 0)" "$(cost_per "$DIR/cost.$p.$k" "$u" 0)")")
        cost_runs "$DIR/cost.$w.$k" "$u" 0 >"$DIR/cost.$w.$k.per"
        cost_runs "$DIR/cost.$p.$k" "$u" 0 >"$DIR/cost.$p.$k.per"
        runs+=("$(paired "$DIR/cost.$w.$k.per" "$DIR/cost.$p.$k.per" 1)")
    done
    printf '   %-24s %22s %20s %20s\n' "whtunnel / nginx-proxy" "${rs[0]}" "${rs[1]}" "${rs[2]}"
    # what of it the kernel spent (system calls, loopback TCP, wake-ups): the floor that no work
    # in user space can lower
    local ks=() kr
    for row in "$p 0 nginx-proxy" "$w 2 node" "$w 3 whclient" "$w 0 node+whclient"; do
        read -r f c label <<<"$row"
        kr=$(cost_per "$DIR/cost.$f.reqsys" 100000 "$c")
        ks+=("$label $(printf %.3f "$kr") ($(awk -v a="$kr" -v b="$(cost_per "$DIR/cost.$f.req" 100000 "$c")" 'BEGIN {printf "%.0f%%", (b > 0 ? 100 * a / b : 0)}'))")
    done
    echo "   of it in the kernel (stime), CPU s / 100k requests: ${ks[0]}; ${ks[1]}; ${ks[2]}; ${ks[3]}"
    echo "   whtunnel / nginx-proxy CPU, run by run: requests ${runs[0]}; down ${runs[1]}; up ${runs[2]}"
    local errs
    errs=$(awk '{e += $4} END {print e + 0}' "$DIR/cost.$p.req" "$DIR/cost.$w.req")
    echo "   wrk errors (non-2xx, socket): $errs"
    echo "8. cost: whtunnel (node + whclient) / nginx-proxy CPU-seconds: per request ${rs[0]}, per GiB down ${rs[1]}, per GiB up ${rs[2]}" >>"$DIR/summary"
}

# ---- 9. registrations per second --------------------------------------------------------------

# reg_run NAME PORT PID COUNT [whload option]...: COUNT registrations by whload on the server at
# PORT (process PID); appends "rate seconds whload_cpu_s server_cpu_s count failed_attempts" to
# $DIR/reg.NAME
reg_run() {
    local name=$1 port=$2 pid=$3 count=$4 c0 c1 line hz
    shift 4
    hz=$(getconf CLK_TCK)
    warm_whload "$port" "$@"
    c0=$(cpu_ticks "$pid")
    start_whload "reg-$name" "$port" "$count" reg "$@"
    local wl=$WL_PID
    line=$(wait_ready "reg-$name" "$wl")
    c1=$(cpu_ticks "$pid")
    stop "$wl"
    echo "$(kv rate "$line") $(kv seconds "$line") $(kv cpu "$line") $(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {print (b - a) / hz}') $count $(kv failed "$line")" \
        >>"$DIR/reg.$name"
}

part_register() {
    # a full TLS handshake costs whload more CPU than the node (about 1 ms here): at most 2,000
    local tls_regs=$((REGS < 2000 ? REGS : 2000))
    echo "== 9. registrations: $REGS workers registered by whload (C, libevent, 256 handshakes in flight, a token each) on a"
    echo "   fresh node; and $tls_regs over TLS (ECDSA P-256 self-signed certificate, a full handshake each)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
        -keyout "$DIR/tls.key" -out "$DIR/tls.crt" 2>"$DIR/openssl.err" ||
        { echo "bench.sh: openssl req failed: $(cat "$DIR/openssl.err")" >&2; exit 1; }
    local names=(plain tls) r n
    [ "$GO" = 1 ] && names+=(go)
    for r in $(seq "$REPEAT"); do # interleaved: plain, TLS (, Go), then again
        for n in "${names[@]}"; do
            case $n in
            plain) start_node reg-node WHT_MAX_WORKERS=$((REGS + 100)) WHT_MAX_CONNECTIONS=600 ;;
            tls) start_node reg-node WHT_MAX_WORKERS=$((REGS + 100)) WHT_MAX_CONNECTIONS=600 TLS_KEY="$DIR/tls.key" TLS_CERTIFICATE="$DIR/tls.crt" ;;
            go) start_go_server reg-go ;;
            esac
            if [ "$n" = go ]; then
                reg_run go "$GO_PORT" "$GO_PID" "$REGS"
                stop "$GO_PID"
            else
                local opts=()
                [ "$n" = tls ] && opts=(--tls)
                reg_run "$n" "$NODE_PORT" "$NODE_PID" "$([ "$n" = tls ] && echo "$tls_regs" || echo "$REGS")" "${opts[@]}"
                stop "$NODE_PID"
            fi
            tail -1 "$DIR/reg.$n" | awk -v r="$r" -v n="$n" '{printf "   run %d %-6s %6.0f registrations/s (%d in %.2f s); CPU per 1,000: server %.3f s, whload %.3f s; failed attempts %d\n", r, n, $1, $5, $2, $4 * 1000 / $5, $3 * 1000 / $5, $6}'
        done
    done
    local p0
    p0=$(col 1 "$DIR/reg.plain" | median)
    printf '   %-6s %16s %9s %26s %26s\n' server "registrations/s" "vs plain" "server CPU s per 1,000" "whload CPU s per 1,000"
    for n in "${names[@]}"; do
        local rate sc wc
        rate=$(col 1 "$DIR/reg.$n" | median)
        sc=$(awk '{print $4 * 1000 / $5}' "$DIR/reg.$n" | median)
        wc=$(awk '{print $3 * 1000 / $5}' "$DIR/reg.$n" | median)
        printf '   %-6s %16.0f %9s %26.3f %26.3f\n' "$n" "$rate" "$(ratio "$rate" "$p0")" "$sc" "$wc"
        [ "$n" = tls ] && echo "(TLS: $(printf %.0f "$rate")/s = $(ratio "$rate" "$p0") plain, node $(printf %.0f "$(awk '{print $4 * 1e6 / $5}' "$DIR/reg.tls" | median)") us CPU each)" >>"$DIR/summary.reg"
    done
    echo "9. registrations: plain $(printf %.0f "$p0")/s, node $(printf %.0f "$(awk '{print $4 * 1e6 / $5}' "$DIR/reg.plain" | median)") us CPU each (target >= 5,000/s: $(awk -v a="$p0" 'BEGIN {print (a >= 5000 ? "met" : "not met")}')) $(cat "$DIR/summary.reg" 2>/dev/null)" >>"$DIR/summary"
    echo "   target: >= 5,000 registrations/s (plain)"
}

# ---- 10. many idle workers--------------------------------------------------------------------

part_idle() {
    start_backend
    echo "== 10. idle workers: $IDLE workers held by whload on one node; node RSS per worker, the time to register them,"
    echo "   and small requests to one real worker (whclient + nginx; wrk -t1 -c50 -d${DURATION}s --latency) before and with them"
    local r hz
    hz=$(getconf CLK_TCK)
    for r in $(seq "$REPEAT"); do
        start_node idle-node WHT_MAX_WORKERS=$((IDLE + 100)) WHT_MAX_CONNECTIONS=2000
        local np=$NODE_PORT npid=$NODE_PID url code
        start_client idle-client "$np" ireal "$BACKEND_PORT"
        url="http://127.0.0.1:$np/ireal/small"
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)
        [ "$code" = 200 ] || { echo "bench.sh: $url answered $code" >&2; exit 1; }
        wrk -t1 -c50 -d1s "$url" >/dev/null 2>&1 || true
        warm_whload "$np"
        sleep 1
        local before after line a i c0 c1
        before=$(rss_kib "$npid")
        run_wrk "$url" >>"$DIR/idle.without"
        c0=$(cpu_ticks "$npid")
        start_whload idle-wl "$np" "$IDLE" idle
        local wl=$WL_PID
        line=$(wait_ready idle-wl "$wl")
        c1=$(cpu_ticks "$npid")
        for i in $(seq 20); do # settle: the same RSS twice, 0.25 s apart
            a=$(rss_kib "$npid")
            sleep 0.25
            [ "$a" = "$(rss_kib "$npid")" ] && break
        done
        after=$(rss_kib "$npid")
        run_wrk "$url" >>"$DIR/idle.with"
        stop "$wl" # whload prints its done line on SIGTERM
        grep -q "^done .* open=$IDLE " "$DIR/idle-wl.out" ||
            echo "   (warning: whload did not hold all $IDLE workers to the end: $(tail -1 "$DIR/idle-wl.out"))"
        stop "$CLIENT_PID"
        stop "$npid"
        echo "$before $after $(kv seconds "$line") $(kv rate "$line") $(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {print (b - a) / hz}')" >>"$DIR/idle.mem"
        printf '   run %d: RSS %s -> %s KiB (%.2f KiB per worker); %s registered in %s s (%s/s, node CPU %s s, failed attempts %s)\n' \
            "$r" "$before" "$after" "$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {print (a - b) / n}')" "$IDLE" \
            "$(kv seconds "$line")" "$(kv rate "$line")" "$(tail -1 "$DIR/idle.mem" | awk '{print $5}')" "$(kv failed "$line")"
        printf '          requests without: %s\n          requests with:    %s\n' \
            "$(tail -1 "$DIR/idle.without" | awk '{printf "%8.0f req/s  p50 %6.0f us  p99 %6.0f us  errors %d", $1, $2, $3, $4}')" \
            "$(tail -1 "$DIR/idle.with" | awk '{printf "%8.0f req/s  p50 %6.0f us  p99 %6.0f us  errors %d", $1, $2, $3, $4}')"
    done
    local per secs rate p50a p50b p99a p99b rpsa rpsb
    per=$(awk -v n="$IDLE" '{print ($2 - $1) / n}' "$DIR/idle.mem" | median)
    secs=$(col 3 "$DIR/idle.mem" | median)
    rate=$(col 4 "$DIR/idle.mem" | median)
    rpsa=$(col 1 "$DIR/idle.without" | median)
    rpsb=$(col 1 "$DIR/idle.with" | median)
    p50a=$(col 2 "$DIR/idle.without" | median)
    p50b=$(col 2 "$DIR/idle.with" | median)
    p99a=$(col 3 "$DIR/idle.without" | median)
    p99b=$(col 3 "$DIR/idle.with" | median)
    printf '   %-22s %10s %9s %9s %8s\n' "small requests" "req/s" "p50 us" "p99 us" errors
    printf '   %-22s %10.0f %9.0f %9.0f %8d\n' "without idle workers" "$rpsa" "$p50a" "$p99a" "$(col 4 "$DIR/idle.without" | awk '{s += $1} END {print s + 0}')"
    printf '   %-22s %10.0f %9.0f %9.0f %8d\n' "with $IDLE" "$rpsb" "$p50b" "$p99b" "$(col 4 "$DIR/idle.with" | awk '{s += $1} END {print s + 0}')"
    echo "   with / without: req/s $(ratio "$rpsb" "$rpsa"), p50 $(ratio "$p50b" "$p50a"), p99 $(ratio "$p99b" "$p99a"); run by run p99: $(paired "$DIR/idle.with" "$DIR/idle.without" 3)"
    echo "   node RSS per idle worker $(printf %.2f "$per") KiB; $IDLE registered in $secs s ($rate/s); node CPU while they registered: $(col 5 "$DIR/idle.mem" | median) s"
    echo "10. $IDLE idle workers: node RSS $(printf %.2f "$per") KiB per worker (target <= 2 KiB at 15,000: $([ "$IDLE" -ge 15000 ] && verdict "$per" "<=" 2 || echo "not measured at 15,000")), registered in $secs s; small requests with them: req/s $(ratio "$rpsb" "$rpsa") of without, p99 with / without run by run $(paired "$DIR/idle.with" "$DIR/idle.without" 3)" >>"$DIR/summary"
}

# ---- 11. many viewers of one worker-----------------------------------------------------------

part_streams() {
    start_proxy
    [ -s "$SHM/www/files/64k" ] || head -c 65536 /dev/urandom >"$SHM/www/files/64k"
    echo "== 11. concurrent viewers: wrk -t1 -c$VIEWERS -d${DURATION}s --timeout 5s, GET of a 64 KiB file, through one worker"
    echo "   (a fresh node + whclient each run) vs nginx as a reverse proxy; every answer must be a 2xx"
    local names=(nginx-proxy whtunnel) r n
    for r in $(seq "$REPEAT"); do
        for n in "${names[@]}"; do
            local url line hwm=""
            if [ "$n" = whtunnel ]; then
                start_node streams-node WHT_MAX_CONNECTIONS=$((VIEWERS + 1000))
                start_client streams-client "$NODE_PORT" streams "$BACKEND_PORT"
                url="http://127.0.0.1:$NODE_PORT/streams/files/64k"
            else
                url="http://127.0.0.1:$PROXY_PORT/files/64k"
            fi
            [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true)" = 200 ] ||
                { echo "bench.sh: $url does not answer 200" >&2; exit 1; }
            line=$(run_wrk "$url" "$VIEWERS")
            echo "$line" >>"$DIR/streams.$n"
            local werr
            werr=$(grep -E "Socket errors|Non-2xx" "$DIR/wrk.out" | tr -s ' ' | tr '\n' ';' || true)
            if [ "$n" = whtunnel ]; then
                hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$NODE_PID/status") $(awk '/^VmHWM:/ {print $2}' "/proc/$CLIENT_PID/status")"
                echo "$hwm" >>"$DIR/streams.hwm"
                stop "$CLIENT_PID"
                stop "$NODE_PID"
            fi
            printf '   run %d %-12s %s%s\n' "$r" "$n" \
                "$(echo "$line" | awk '{printf "%8.0f req/s  p50 %6.0f us  p99 %6.0f us  %d requests, %d failed", $1, $2, $3, $5, $4}')" \
                "$([ -n "$hwm" ] && echo "$hwm" | awk '{printf "; peak RSS node %d KiB, whclient %d KiB", $1, $2}')"
            [ -z "$werr" ] || echo "          wrk:$werr"
        done
    done
    local p0
    p0=$(col 1 "$DIR/streams.nginx-proxy" | median)
    printf '   %-12s %10s %14s %9s %9s %10s %9s\n' path "req/s" "vs nginx-proxy" "p50 us" "p99 us" requests failed
    for n in "${names[@]}"; do
        local rps fails reqs
        rps=$(col 1 "$DIR/streams.$n" | median)
        fails=$(col 4 "$DIR/streams.$n" | awk '{s += $1} END {print s + 0}')
        reqs=$(col 5 "$DIR/streams.$n" | awk '{s += $1} END {print s + 0}')
        printf '   %-12s %10.0f %14s %9.0f %9.0f %10d %9d\n' "$n" "$rps" "$(ratio "$rps" "$p0")" \
            "$(col 2 "$DIR/streams.$n" | median)" "$(col 3 "$DIR/streams.$n" | median)" "$reqs" "$fails"
        [ "$n" = whtunnel ] && echo "11. $VIEWERS viewers of one worker: whtunnel $(printf %.0f "$rps") req/s = $(ratio "$rps" "$p0") nginx-proxy, $fails of $reqs failed; peak RSS node $(col 1 "$DIR/streams.hwm" | median) KiB, whclient $(col 2 "$DIR/streams.hwm" | median) KiB" >>"$DIR/summary"
    done
    echo "   whtunnel / nginx-proxy req/s, run by run: $(paired "$DIR/streams.whtunnel" "$DIR/streams.nginx-proxy" 1)"
    echo "   peak RSS (VmHWM, median of runs): node $(col 1 "$DIR/streams.hwm" | median) KiB, whclient $(col 2 "$DIR/streams.hwm" | median) KiB"
    echo "   target: no failure"
}

# steal_ticks: "steal total" of /proc/stat's cpu line (clock ticks the hypervisor gave to other
# guests while this machine's CPUs wanted to run, and all ticks)
steal_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit}' /proc/stat; }

# run_part NAME: runs part_NAME, then says how busy the rest of the machine was meanwhile (other
# users' processes; CPU time of processes that started and ended within the part is missed
# unless a parent that is still there reaped them) and how much of its CPU time the host took
# (steal: a virtual machine's neighbours, which no process here shows)
run_part() {
    "$PY" "$WSB" cpu-snap $$ "$DIR/cpu.snap"
    local st0 st1 other steal
    st0=$(steal_ticks)
    "part_$1"
    st1=$(steal_ticks)
    other=$("$PY" "$WSB" cpu-other $$ "$DIR/cpu.snap")
    steal=$(echo "$st0 $st1" | awk '{d = $4 - $2; printf "%.0f", (d > 0 ? ($3 - $1) * 100 / d : 0)}')
    echo "   (other processes on the machine used ${other}% of its CPU during this part; the host took ${steal}% (steal))"
    echo "   ($1: other processes ${other}% of the CPU, steal ${steal}%)" >>"$DIR/summary"
    echo
}

T0=$SECONDS
want http && run_part http
want throughput && run_part throughput
want memory && run_part memory
want ws && run_part ws
want slow && run_part slow
want cluster && run_part cluster
want tls && run_part tls
want cost && run_part cost
want register && run_part register
want idle && run_part idle
want streams && run_part streams
echo "== summary (medians of $REPEAT runs; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
sed 's/^/   /' "$DIR/summary" 2>/dev/null || true
echo "done in $((SECONDS - T0)) s"
