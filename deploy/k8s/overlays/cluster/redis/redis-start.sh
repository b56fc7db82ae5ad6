#!/bin/sh
# Starts one Redis of the whtunnel-redis StatefulSet: the master the
# sentinels name, or a replica of it. When no sentinel answers (a fresh
# start), pod 0 is the master and the others replicate it.
# No persistence: the registry is soft state (docs/deploy.md, "Redis").
# REDIS_PASSWORD is required of clients (the nodes, the sentinels, the
# replica); the sentinels themselves take none.
# DATA_DIR (default /data) and BIND (default: every address) are for
# tests/integration/test_k8s.py, which runs this script outside Kubernetes.
set -eu
pw=$(printf '%s' "$REDIS_PASSWORD") # less the trailing newline a Secret made from a file keeps
[ -n "$pw" ] || { echo "redis-start: REDIS_PASSWORD is empty" >&2; exit 1; }
data=${DATA_DIR:-/data}
me="$POD_NAME.$REDIS_SERVICE"
master=""
i=0
while [ "$i" -lt "$SENTINELS" ]; do
    a=$(timeout 3 redis-cli -h "$SENTINEL_STATEFULSET-$i.$SENTINEL_SERVICE" -p 26379 --raw \
        sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1) || a=""
    case "$a" in
    "" | ERR* | *" "*) ;;
    *) master="$a"; break ;;
    esac
    i=$((i + 1))
done
[ -n "$master" ] || master="$REDIS_STATEFULSET-0.$REDIS_SERVICE"
# the password in a file of its own rather than on the command line (ps)
umask 077
printf 'requirepass "%s"\nmasterauth "%s"\n' "$pw" "$pw" >"$data/auth.conf"
set -- "$data/auth.conf" --port 6379 --protected-mode no --dir "$data" --save "" --appendonly no \
    --replica-announce-ip "$me"
if [ -n "${BIND:-}" ]; then
    set -- "$@" --bind "$BIND"
fi
if [ "$master" != "$me" ]; then
    echo "redis-start: $me replicates $master"
    set -- "$@" --replicaof "$master" 6379
else
    echo "redis-start: $me is the master"
fi
exec redis-server "$@"
