#!/usr/bin/env bash
# Empty the BuildKit cache mounts that bench/app's Dockerfile uses (uv's /cache/uv and pip's
# /root/.cache/pip), so the next build downloads every wheel again: a "cold" build.
# Prunes only the build-cache records whose description is "cached mount <target> from ...", by id;
# nothing else in the engine's build cache is touched.
#   bench/drop-cache-mounts.sh                 # both
#   bench/drop-cache-mounts.sh /cache/uv       # just these targets
set -euo pipefail
[ $# -gt 0 ] || set -- /cache/uv /root/.cache/pip
du=$(docker buildx du --verbose 2>/dev/null)
for target in "$@"; do
    ids=$(printf '%s\n' "$du" | awk -v t="cached mount $target from " '
        /^ID:/ { id = $2 }
        /^Description:/ { sub(/^Description:[ \t]*/, ""); if (index($0, t) == 1) print id }')
    if [ -z "$ids" ]; then
        echo "drop-cache-mounts: $target: none"
        continue
    fi
    for id in $ids; do
        docker builder prune -f --filter "id=$id" >/dev/null
        echo "drop-cache-mounts: $target: pruned $id"
    done
done
