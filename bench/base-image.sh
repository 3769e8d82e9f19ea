#!/usr/bin/env bash
# Build the benchmark's Python base image without a registry:
#   debootstrap (minbase + python3, python3-venv, ca-certificates) -> docker import.
# Cached by tag: does nothing when the tag exists already (FORCE=1 rebuilds).
#
#   bench/base-image.sh                     # -> dockwarm-bench/python:bookworm
#   BASE_TAG=other/tag bench/base-image.sh
#   MIRROR=http://deb.debian.org/debian bench/base-image.sh
set -euo pipefail

TAG="${BASE_TAG:-dockwarm-bench/python:bookworm}"
SUITE="${SUITE:-bookworm}"
LABEL="dev.dockwarm.bench=true"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base-image: $TAG exists ($(docker image inspect -f '{{.Id}}' "$TAG" | cut -c1-19)), skipping [$(elapsed "$t0")s]"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "base-image: debootstrap needs root" >&2
    exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    echo "base-image: installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
DEBOOTSTRAP=$(command -v debootstrap || echo /usr/sbin/debootstrap)

# The mirror: the first URIs: of the main Debian suite in the deb822 sources, else deb.debian.org.
if [ -z "${MIRROR:-}" ]; then
    src=/etc/apt/sources.list.d/debian.sources
    if [ -r "$src" ]; then
        MIRROR=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' "$src")
    fi
    if [ -z "${MIRROR:-}" ] && [ -r /etc/apt/sources.list ]; then
        MIRROR=$(awk '$1 == "deb" && $3 == "'"$SUITE"'" { print $2; exit }' /etc/apt/sources.list)
    fi
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi

work=$(mktemp -d /tmp/dockwarm-bench-rootfs.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"

echo "base-image: debootstrap $SUITE from $MIRROR into $rootfs"
t1=$(now)
"$DEBOOTSTRAP" --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    echo "base-image: debootstrap failed" >&2
    exit 1
}
echo "base-image: debootstrap done [$(elapsed "$t1")s]"

# Trim what an image does not need (apt lists, caches, docs); keep it reproducible enough.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/tmp/* 2>/dev/null || true

t2=$(now)
tar --numeric-owner -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $LABEL" \
    --change 'CMD ["python3"]' \
    --message "dockwarm bench base: debootstrap $SUITE minbase + python3" \
    - "$TAG" >/dev/null
echo "base-image: docker import done [$(elapsed "$t2")s]"
rm -rf "$work"   # a root filesystem: tens of thousands of files, counted in the total below

docker run --rm "$TAG" python3 -c 'import sys, venv, ssl; print("base-image: python", sys.version.split()[0])'
echo "base-image: $TAG $(docker image inspect -f '{{.Id}} {{.Size}}' "$TAG" | awk '{ printf "%s %.0fMB", substr($1,1,19), $2/1e6 }') [total $(elapsed "$t0")s]"
