#!/usr/bin/env bash
# Installs what webhooktunnel needs from Debian 12's packages, and nothing that
# is already there. Idempotent. Run as root (or with sudo available).
#   deploy/install-deps.sh            build and run: compiler, cmake, libraries
#   deploy/install-deps.sh --test     also the test suite's needs (cmocka, Redis and Redis Sentinel, HAProxy, pytest, clang,
#                                     chromium and Node.js/npm for the dashboard's browser test,
#                                     PyYAML and iproute2 for the Kubernetes manifests' test, podman,
#                                     docker-compose and debootstrap for the container image's test,
#                                     nginx and wrk for the benchmark harness's tiny run, test_bench.py)
#   deploy/install-deps.sh --bench    also the benchmarks' needs (nginx, wrk, curl, openssl, python3, iproute2, Redis, HAProxy)
#   deploy/install-deps.sh --cluster  also what deploy/local-cluster.sh runs (Redis, HAProxy, curl)
set -euo pipefail

want=(gcc libc6-dev make cmake pkg-config ca-certificates
      libevent-dev libssl-dev libhiredis-dev libjwt-dev libjansson-dev libwebsockets-dev)
for arg in "$@"; do
    case "$arg" in
    --test) want+=(libcmocka-dev redis-server redis-sentinel haproxy curl openssl clang libclang-rt-14-dev
                   python3 python3-pytest python3-websockets python3-redis python3-requests
                   chromium nodejs prometheus python3-yaml iproute2
                   podman runc netavark aardvark-dns iptables docker-compose debootstrap nginx wrk)
          # Debian's npm, unless an npm is there already (NodeSource's nodejs bundles one
          # and conflicts with Debian's npm package)
          command -v npm >/dev/null || want+=(npm) ;;
    --bench) want+=(nginx wrk curl openssl python3 iproute2 redis-server haproxy) ;;
    --cluster) want+=(redis-server haproxy curl openssl) ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps.sh: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps.sh: run as root (missing: ${missing[*]})" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; refresh them when an install fails too.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
    $SUDO apt-get update -q
fi
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
