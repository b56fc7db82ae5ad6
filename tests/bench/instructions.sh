#!/usr/bin/env bash
# Instructions per small keep-alive request in the node, counted by valgrind's
# callgrind (repeatable to about 0.5%, whatever else the machine does, unlike
# wall-clock figures). The node runs under callgrind behind a whclient and an
# nginx backend on 127.0.0.1; wrk sends GETs of a 13-byte body for 15 s.
#   tests/bench/instructions.sh BUILD_DIR [VAR=value ...]   e.g.
#   tests/bench/instructions.sh build-bench WHT_LOG_LEVEL=info   (access lines on)
# Prints "<requests> requests, <Ir> instructions, <Ir/request> per request".
# Needs valgrind, nginx, wrk, curl (deploy/install-deps.sh --bench; apt-get install valgrind).
set -euo pipefail
build=$(cd "${1:?usage: instructions.sh BUILD_DIR [VAR=value ...]}" && pwd)
shift
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend=$(free_port)
node=$(free_port)
mkdir -p "$dir/tmp"
cat >"$dir/nginx.conf" <<NG
worker_processes 1; daemon off; pid $dir/ng.pid; error_log $dir/ng.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_timeout 120s; keepalive_requests 1000000;
 client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
 uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
 server { listen 127.0.0.1:$backend; location = /small { default_type text/plain; return 200 "hello, world\n"; } } }
NG
nginx -c "$dir/nginx.conf" -p "$dir" & pids+=($!)
export TASKCLUSTER_PROXY_SECRET_A=instructions-bench-secret PORT=$node WHT_LISTEN_ADDR=127.0.0.1 \
    WHT_ADMIN_ADDR=off WHT_LOG_LEVEL=warn
for kv in "$@"; do export "${kv?}"; done
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$build/node/whtunnel" 2>"$dir/node.log" & np=$!
pids+=($np)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$node/__lbheartbeat__" && break; sleep 0.2; done
tok=$("$build/node/whtunnel" token --id bench)
"$build/client/whclient" "ws://127.0.0.1:$node" bench "$backend" --token "$tok" >/dev/null 2>"$dir/client.log" &
pids+=($!)
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$node/bench/small")" = 200 ] && break
    sleep 0.2
done
callgrind_control -z "$np" >/dev/null 2>&1 || true
wrk -t1 -c10 -d15s "http://127.0.0.1:$node/bench/small" >"$dir/wrk.txt"
callgrind_control -d "$np" >/dev/null
sleep 1
req=$(awk '/requests in/{print $1}' "$dir/wrk.txt")
ir=$(for f in "$dir"/cg.out.*; do callgrind_annotate --auto=no "$f" | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}'; done | sort -n | tail -1)
echo "$req requests, $ir instructions, $((ir / req)) per request"
