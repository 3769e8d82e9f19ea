#!/usr/bin/env bash
# Regenerate the benchmark's lockfiles (maintainers only; the benchmark itself never runs this).
#   1. resolve bench/app/pyproject.toml and each bench/app/variants/*/pyproject.toml against PyPI
#      (with --exclude-newer EXCLUDE_NEWER, so the same date gives the same pins),
#   2. download exactly those pins (+ uv) with fetch.sh,
#   3. serve them on 127.0.0.1:8765 and `uv lock` each project against that LOCAL index, so the
#      committed uv.lock files name http://127.0.0.1:8765/... URLs and sha256 hashes,
#   4. stop the server.
#
#   bench/index/relock.sh
#   EXCLUDE_NEWER=2026-01-01T00:00:00Z bench/index/relock.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$here")
PORT=8765
INDEX="http://127.0.0.1:$PORT/simple"
UV_VERSION=$(sed -n 's/^ARG UV_VERSION=//p' "$bench/app/Dockerfile")
EXCLUDE_NEWER="${EXCLUDE_NEWER:-$(date -u +%Y-%m-%dT00:00:00Z)}"

tmp=$(mktemp -d /tmp/dockwarm-bench-relock.XXXXXX)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# uv on the host, the same version as in the image.
UV="${UV:-}"
if [ -z "$UV" ]; then
    python3 -m venv "$tmp/uv-venv"
    "$tmp/uv-venv/bin/pip" install --quiet "uv==$UV_VERSION"
    UV="$tmp/uv-venv/bin/uv"
fi
export UV_CACHE_DIR="$tmp/uv-cache" UV_PYTHON_DOWNLOADS=never
unset UV_DEFAULT_INDEX UV_INDEX_URL UV_INDEX UV_EXTRA_INDEX_URL

projects=("$bench/app")
for v in "$bench"/app/variants/*/; do projects+=("${v%/}"); done

# 1. pins from PyPI
: >"$tmp/pins.txt"
for p in "${projects[@]}"; do
    d="$tmp/resolve/$(basename "$p")"
    mkdir -p "$d"
    cp "$p/pyproject.toml" "$d/"
    (cd "$d" && "$UV" lock --quiet --exclude-newer "$EXCLUDE_NEWER" \
        && "$UV" export --quiet --format requirements-txt --no-hashes --all-groups --no-emit-project \
        | sed -n 's/^\([A-Za-z0-9._-]*==[^ ;]*\).*/\1/p') >>"$tmp/pins.txt"
done
sort -u -o "$tmp/pins.txt" "$tmp/pins.txt"
echo "relock: $(wc -l <"$tmp/pins.txt") pins from PyPI (exclude-newer $EXCLUDE_NEWER)"

# 2. wheels: exactly the pins (the index then holds one version of each package)
rm -rf "$here/wheels"
"$here/fetch.sh" "$tmp/pins.txt"

# 3. lock against the local index
python3 "$here/serve.py" --port "$PORT" --log "$tmp/index.log" --log-all --metadata >"$tmp/serve.out" 2>&1 &
server=$!
for _ in $(seq 50); do
    curl -fsS "$INDEX/" >/dev/null 2>&1 && break
    sleep 0.2
done
for p in "${projects[@]}"; do
    rm -f "$p/uv.lock"
    (cd "$p" && "$UV" lock --default-index "$INDEX")
    echo "relock: $p/uv.lock: $(grep -c '^\[\[package\]\]' "$p/uv.lock") packages"
done

# 4. the checks fetch.sh does against the new locks
"$here/fetch.sh" >/dev/null
echo "relock: done"
