#!/usr/bin/env bash
# A whtunnel cluster on this machine, for trying it by hand: a private
# redis-server (with a password), three nodes, and HAProxy in front
# balancing viewers and workers across the nodes (health-checked on
# /__lbheartbeat__). HAProxy tells the nodes each client's address with the
# PROXY protocol (send-proxy-v2, its health checks too): it connects to the
# nodes from 127.0.0.2, the nodes' WHT_PROXY_PROTOCOL, so that a node's own
# port still answers plain requests from 127.0.0.1.
#
#   deploy/local-cluster.sh start     install what is missing, build, start everything
#   deploy/local-cluster.sh status    what runs, and each node's /__cluster__ figures
#   deploy/local-cluster.sh token ID  a worker token for ID
#   deploy/local-cluster.sh kill N    SIGKILL node N (1..3), to watch the cluster cope
#   deploy/local-cluster.sh drain N   SIGTERM node N: its workers move to the others, it exits
#   deploy/local-cluster.sh restart N start node N again
#   deploy/local-cluster.sh stop      stop everything (nodes leave the cluster cleanly)
#
# Ports (override with the environment): WHT_LB_PORT (8080) for viewers and
# workers; nodes on WHT_NODE_BASE_PORT+1..3 (8081..8083) with peer ports
# WHT_PEER_BASE_PORT+1..3 (9081..9083) and admin listeners (/metrics,
# /dashboard) on WHT_ADMIN_BASE_PORT+1..3 (9181..9183); Redis on
# WHT_REDIS_PORT (6399).
# State, logs and generated secrets live in WHT_CLUSTER_DIR
# (/tmp/whtunnel-cluster). WHT_BIN_DIR runs the whtunnel and whclient found
# there instead of building (the tests do).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${WHT_CLUSTER_DIR:-/tmp/whtunnel-cluster}
lb_port=${WHT_LB_PORT:-8080}
base=${WHT_NODE_BASE_PORT:-8080}
peer_base=${WHT_PEER_BASE_PORT:-9080}
admin_base=${WHT_ADMIN_BASE_PORT:-9180}
redis_port=${WHT_REDIS_PORT:-6399}
bin=${WHT_BIN_DIR:+$WHT_BIN_DIR/node/whtunnel}
bin=${bin:-$root/build/node/whtunnel}
client=$(dirname "$(dirname "$bin")")/client/whclient

die() { echo "local-cluster.sh: $*" >&2; exit 1; }

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

wait_port() { # port, what
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    die "$2 did not start listening on port $1 (see $dir/*.log)"
}

secrets() {
    mkdir -p "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/secrets" ]; then
        umask 077
        {
            echo "REDIS_PASSWORD=$(openssl rand -hex 16)"
            echo "CLUSTER_SECRET=$(openssl rand -hex 24)"
            echo "WORKER_SECRET=$(openssl rand -hex 24)"
        } >"$dir/secrets"
    fi
    # shellcheck disable=SC1091
    . "$dir/secrets"
}

start_node() { # N
    local i=$1
    running "node$i" && return 0
    REDIS_URL="redis://:$REDIS_PASSWORD@127.0.0.1:$redis_port" \
        WHT_NODE_ID="node$i" \
        WHT_PEER_ADDR="127.0.0.1:$((peer_base + i))" \
        WHT_ADMIN_ADDR="127.0.0.1:$((admin_base + i))" \
        WHT_CLUSTER_SECRET="$CLUSTER_SECRET" \
        TASKCLUSTER_PROXY_SECRET_A="$WORKER_SECRET" \
        URL_PREFIX="http://127.0.0.1:$lb_port" \
        WHT_PROXY_PROTOCOL=127.0.0.2/32 \
        PORT="$((base + i))" WHT_LISTEN_ADDR=127.0.0.1 \
        nohup "$bin" >>"$dir/node$i.log" 2>&1 &
    echo $! >"$dir/node$i.pid"
    wait_port "$((base + i))" "node$i"
}

cmd_start() {
    "$root/deploy/install-deps.sh" --cluster
    if [ -z "${WHT_BIN_DIR:-}" ]; then
        cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
        cmake --build "$root/build" -j"$(nproc)" --target whtunnel whclient >/dev/null
    fi
    secrets
    if ! running redis; then
        redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
            --requirepass "$REDIS_PASSWORD" --daemonize yes --pidfile "$dir/redis.pid" \
            --logfile "$dir/redis.log" --dir "$dir" >/dev/null
        wait_port "$redis_port" redis
    fi
    for i in 1 2 3; do start_node "$i"; done
    if ! running haproxy; then
        cat >"$dir/haproxy.cfg" <<EOF
global
    pidfile $dir/haproxy.pid
    log stdout format raw local0 notice
defaults
    mode http
    log global
    option httplog
    timeout connect 3s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    option http-server-close
    option redispatch
    retries 3
frontend viewers_and_workers
    bind 127.0.0.1:$lb_port
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /__lbheartbeat__
    http-check expect status 200
    # the client's address to the nodes (WHT_PROXY_PROTOCOL), health checks included
    default-server check inter 1s fall 2 rise 1 send-proxy-v2 check-send-proxy source 127.0.0.2
    server node1 127.0.0.1:$((base + 1))
    server node2 127.0.0.1:$((base + 2))
    server node3 127.0.0.1:$((base + 3))
EOF
        nohup haproxy -f "$dir/haproxy.cfg" >>"$dir/haproxy.log" 2>&1 &
        echo $! >"$dir/haproxy.pid"
        wait_port "$lb_port" haproxy
    fi
    local tok
    tok=$(TASKCLUSTER_PROXY_SECRET_A="$WORKER_SECRET" "$bin" token --id demo --ttl 24h)
    cat <<EOF

  A whtunnel cluster runs: HAProxy on 127.0.0.1:$lb_port in front of node1..3
  (127.0.0.1:$((base + 1))..$((base + 3)); HAProxy passes each client's address with the
  PROXY protocol from 127.0.0.2), Redis on 127.0.0.1:$redis_port. Logs in $dir.
  Expose a local service on port 8000 as worker "demo" through the balancer:
    $client ws://127.0.0.1:$lb_port demo 8000 --token $tok
  then browse http://127.0.0.1:$lb_port/demo/ (any node serves it; try each:
  http://127.0.0.1:$((base + 1))/demo/ ... and $0 kill 2).
  Each node's dashboard and metrics: http://127.0.0.1:$((admin_base + 1))/dashboard
  ... $((admin_base + 3)) (/metrics, /status, /cluster; deploy/prometheus/ scrapes them).
  $0 status | token ID | kill N | drain N | restart N | stop

EOF
}

cmd_status() {
    secrets
    for name in redis node1 node2 node3 haproxy; do
        if running "$name"; then echo "$name: running (pid $(cat "$dir/$name.pid"))"; else echo "$name: stopped"; fi
    done
    for i in 1 2 3; do
        if running "node$i" && command -v curl >/dev/null; then
            echo "node$i: $(curl -s -m 2 "http://127.0.0.1:$((base + i))/__cluster__" || true)"
        fi
    done
}

stop_pid() { # name, signal
    if running "$1"; then
        local pid
        pid=$(cat "$dir/$1.pid")
        kill "-$2" "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$1.pid"
}

cmd_stop() {
    [ -d "$dir" ] || { echo "nothing runs (no $dir)"; return 0; }
    stop_pid haproxy TERM
    # the whole cluster goes: no drain (there is nowhere to move to), but each
    # node leaves the cluster cleanly (a second SIGTERM ends a drain)
    for i in 1 2 3; do
        if running "node$i"; then
            kill -TERM "$(cat "$dir/node$i.pid")" 2>/dev/null || true
            sleep 0.1
            kill -TERM "$(cat "$dir/node$i.pid")" 2>/dev/null || true
        fi
    done
    for i in 1 2 3; do stop_pid "node$i" TERM; done
    stop_pid redis TERM
    echo "stopped (logs and secrets kept in $dir)"
}

case "${1:-}" in
start) cmd_start ;;
status) cmd_status ;;
stop) cmd_stop ;;
token)
    [ -n "${2:-}" ] || die "usage: $0 token ID"
    secrets
    TASKCLUSTER_PROXY_SECRET_A="$WORKER_SECRET" "$bin" token --id "$2" --ttl 24h
    ;;
kill)
    [[ "${2:-}" =~ ^[123]$ ]] || die "usage: $0 kill 1|2|3"
    stop_pid "node$2" KILL
    echo "node$2 killed (SIGKILL)"
    ;;
drain)
    [[ "${2:-}" =~ ^[123]$ ]] || die "usage: $0 drain 1|2|3"
    secrets
    if running "node$2"; then
        pid=$(cat "$dir/node$2.pid")
        kill -TERM "$pid"
        for _ in $(seq 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$dir/node$2.pid"
        echo "node$2 drained and stopped: $(grep -c 'drain: done' "$dir/node$2.log") clean drain(s) in its log"
    else
        echo "node$2 is not running"
    fi
    ;;
restart)
    [[ "${2:-}" =~ ^[123]$ ]] || die "usage: $0 restart 1|2|3"
    secrets
    start_node "$2"
    echo "node$2 started"
    ;;
-h | --help | "") sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (try --help)" ;;
esac
