#!/bin/sh
# Starts one sentinel of the whtunnel-sentinel StatefulSet, watching the
# master the other sentinels name, else the Redis that says it is a
# master, else pod 0 of whtunnel-redis (a fresh start). Its configuration
# is written to /data (sentinel rewrites it as the master changes).
# REDIS_PASSWORD is Redis's (the sentinels take none: the nodes ask them
# without one).
# DATA_DIR (default /data) and BIND (default: every address) are for
# tests/integration/test_k8s.py, which runs this script outside Kubernetes.
set -eu
pw=$(printf '%s' "$REDIS_PASSWORD") # less the trailing newline a Secret made from a file keeps
[ -n "$pw" ] || { echo "sentinel-start: REDIS_PASSWORD is empty" >&2; exit 1; }
data=${DATA_DIR:-/data}
me="$POD_NAME.$SENTINEL_SERVICE"
master=""
i=0
while [ -z "$master" ] && [ "$i" -lt "$SENTINELS" ]; do
    h="$SENTINEL_STATEFULSET-$i.$SENTINEL_SERVICE"
    i=$((i + 1))
    [ "$h" != "$me" ] || continue
    a=$(timeout 3 redis-cli -h "$h" -p 26379 --raw \
        sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null | head -n 1) || a=""
    case "$a" in
    "" | ERR* | *" "*) ;;
    *) master="$a" ;;
    esac
done
i=0
while [ -z "$master" ] && [ "$i" -lt "$REDIS_REPLICAS" ]; do
    h="$REDIS_STATEFULSET-$i.$REDIS_SERVICE"
    i=$((i + 1))
    if REDISCLI_AUTH="$pw" timeout 3 redis-cli -h "$h" -p 6379 info replication 2>/dev/null |
        grep -q '^role:master'; then
        master="$h"
    fi
done
[ -n "$master" ] || master="$REDIS_STATEFULSET-0.$REDIS_SERVICE"
echo "sentinel-start: $me watches $master"
umask 077
cat >"$data/sentinel.conf" <<CONF
port 26379
${BIND:+bind $BIND}
dir $data
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $me
sentinel monitor $MASTER_NAME $master 6379 $QUORUM
sentinel down-after-milliseconds $MASTER_NAME 5000
sentinel failover-timeout $MASTER_NAME 30000
sentinel parallel-syncs $MASTER_NAME 1
sentinel auth-pass $MASTER_NAME $pw
CONF
exec redis-sentinel "$data/sentinel.conf"
