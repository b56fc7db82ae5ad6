#!/usr/bin/env bash
# Makes a Debian 12 base image without a registry: debootstrap (minbase) from
# the Debian mirror this machine's apt uses, trimmed like debian:12-slim, then
# `podman import`. For machines that cannot pull debian:12-slim; where a
# registry is reachable, use the real image and skip this.
#
#   deploy/make-base-image.sh [--cache DIR] [--tag NAME]
#
#   --cache DIR  keep the root file system's tarball in DIR (default
#                ./container-cache): a second run imports it without running
#                debootstrap again (about 1 minute and 100 MB of downloads).
#   --tag NAME   image name (default localhost/debian:12-slim); nothing is done
#                when podman already has it.
#
# Then: podman build --build-arg BASE=localhost/debian:12-slim -f deploy/Dockerfile .
# Needs root, debootstrap and podman (deploy/install-deps.sh --test).
set -euo pipefail

cache=./container-cache
tag=localhost/debian:12-slim
while [ $# -gt 0 ]; do
    case "$1" in
    --cache) cache=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "make-base-image.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if podman image exists "$tag"; then
    exit 0
fi
mkdir -p "$cache"
tarball=$cache/debian-12-minbase.tar

# The first Debian mirror named in apt's sources (one-line or deb822 format).
mirror() {
    local m
    m=$(grep -hs -E '^(deb |URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            /etc/apt/sources.list.d/*.sources |
        grep -o -E 'https?://[^ ]*/debian/?' | grep -v -- '-security' | head -n 1)
    echo "${m:-http://deb.debian.org/debian}"
}

if [ ! -s "$tarball" ]; then
    root=$(mktemp -d "$cache/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    m=$(mirror)
    echo "make-base-image.sh: debootstrap bookworm from $m (about a minute)" >&2
    debootstrap --variant=minbase bookworm "$root" "$m" >"$cache/debootstrap.log" 2>&1 ||
        { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    sec=${m%/debian*}/debian-security
    cat >"$root/etc/apt/sources.list" <<EOF
deb $m bookworm main
deb $m bookworm-updates main
deb $sec bookworm-security main
EOF
    # What debian:12-slim does: no documentation or translations from later
    # installs, no package cache left in layers.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
podman import --change 'CMD ["bash"]' "$tarball" "$tag" >/dev/null
echo "make-base-image.sh: imported $tag from $tarball" >&2
