#!/bin/bash
# The container image's HEALTHCHECK: exit 0 when the node's admin listener
# answers GET /healthz with 200 (liveness: it says so while draining too).
# Bash's /dev/tcp, so that the image needs no curl. With WHT_ADMIN_ADDR=off,
# a TCP connect to the viewer port.
set -u
addr=${WHT_ADMIN_ADDR:-127.0.0.1:$((${PORT:-8080} + 2))}
path=/healthz
if [ "$addr" = off ]; then
    addr=127.0.0.1:${PORT:-8080}
    path=
fi
host=${addr%:*}
port=${addr##*:}
host=${host#[}
host=${host%]}
case "$host" in
'' | 0.0.0.0 | '::' | '*') host=127.0.0.1 ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
[ -n "$path" ] || exit 0
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$path" >&3
IFS= read -r -t 2 status <&3 || exit 1
case "$status" in
"HTTP/1."?" 200 "*) exit 0 ;;
esac
echo "whtunnel-healthcheck: $addr$path answered: ${status%$'\r'}" >&2
exit 1
