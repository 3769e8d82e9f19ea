#!/usr/bin/env bash
# Download every wheel the benchmark's local index serves into bench/index/wheels/.
# This is the benchmark's ONLY network use; everything after it runs offline.
#
#   bench/index/fetch.sh              # the packages named in the committed uv.lock files + uv
#   bench/index/fetch.sh PINS.txt     # exactly these name==version pins + uv (used by relock.sh)
#
# What it downloads, by default:
#   - every registry package of bench/app/uv.lock and bench/app/variants/*/uv.lock (the variant
#     "add-package" adds python-slugify and its one dependency text-unidecode);
#   - uv itself (UV_VERSION below, the same as the Dockerfile's ARG UV_VERSION).
# Wheels only, for CPython 3.11 on x86_64 Linux (bookworm's python3 is 3.11, glibc 2.36).
# Then it checks that each wheel a lock names is present with the lock's sha256.
# Already-downloaded files are kept (pip skips them), so a second run is quick.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$here")
wheels="$here/wheels"
UV_VERSION="${UV_VERSION:-$(sed -n 's/^ARG UV_VERSION=//p' "$bench/app/Dockerfile")}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$wheels"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
t0=$(now)

# Check: every wheel a lock names is here, with the lock's hash.
check() {
"$PYTHON" - "$wheels" "$bench"/app/uv.lock "$bench"/app/variants/*/uv.lock <<'EOF'
import hashlib, os, sys, tomllib
wheels, locks = sys.argv[1], sys.argv[2:]
bad = 0
checked = set()
for path in locks:
    if not os.path.exists(path):
        continue
    with open(path, "rb") as f:
        lock = tomllib.load(f)
    for p in lock.get("package", []):
        for w in p.get("wheels", []):
            name = w["url"].rsplit("/", 1)[-1]
            if name in checked:
                continue
            checked.add(name)
            file = os.path.join(wheels, name)
            if not os.path.exists(file):
                print(f"fetch: MISSING {name} (named by {path})"); bad += 1; continue
            digest = "sha256:" + hashlib.sha256(open(file, "rb").read()).hexdigest()
            if digest != w.get("hash", digest):
                print(f"fetch: HASH MISMATCH {name}: lock {w['hash']}, file {digest}"); bad += 1
print(f"fetch: {len(checked)} locked wheels checked, {bad} problems")
sys.exit(1 if bad else 0)
EOF
}

pins=$(mktemp /tmp/dockwarm-bench-pins.XXXXXX)
trap 'rm -f "$pins"' EXIT

if [ $# -ge 1 ]; then
    grep -E '^[A-Za-z0-9._-]+==[^ ;]+' "$1" | sed 's/[ ;].*//' >"$pins"
else
    "$PYTHON" - "$bench"/app/uv.lock "$bench"/app/variants/*/uv.lock >"$pins" <<'EOF'
import sys, tomllib
pins = set()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        lock = tomllib.load(f)
    for p in lock.get("package", []):
        if "registry" in p.get("source", {}):
            pins.add(f'{p["name"]}=={p["version"]}')
print("\n".join(sorted(pins)))
EOF
fi
echo "uv==$UV_VERSION" >>"$pins"
echo "fetch: $(wc -l <"$pins") pins -> $wheels"

if [ $# -eq 0 ] && compgen -G "$wheels/uv-$UV_VERSION-*.whl" >/dev/null && check >/dev/null; then
    echo "fetch: every locked wheel and uv $UV_VERSION present, nothing to download [$(elapsed "$t0")s]"
    exit 0
fi

# Only PyPI and this folder: no find-links from the environment.
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any \
    --dest "$wheels" -r "$pins"
if [ $# -eq 0 ]; then check; fi

echo "fetch: $(ls "$wheels" | wc -l) files, $(du -sh "$wheels" | cut -f1) in $wheels [$(elapsed "$t0")s]"
