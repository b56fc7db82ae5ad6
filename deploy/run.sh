#!/usr/bin/env bash
# Installs what the node needs, builds it, and runs it in the foreground.
# Without secrets configured (and ENV not "production") the node generates a
# development secret and prints a ready-to-paste whclient command.
#   deploy/run.sh [whtunnel flags...]      e.g. deploy/run.sh --port 9000
# Every setting is also an environment variable: see build/node/whtunnel --help.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target whtunnel whclient >/dev/null
echo "built $root/build/node/whtunnel and $root/build/client/whclient" >&2
exec "$root/build/node/whtunnel" "$@"
