#!/usr/bin/env bash
# End-to-end check of the benchmark fixtures (offline once bench/index/fetch.sh has run):
#   1. base image (bench/base-image.sh; cached by tag),
#   2. the local index on 127.0.0.1:8765, logging wheel downloads,
#   3. COLD: build bench/app with --no-cache after emptying the BuildKit cache mounts
#      (bench/drop-cache-mounts.sh): every wheel the image needs (its locked non-dev packages
#      + uv's own wheel) must be fetched exactly once;
#   4. WARM: build a copy of bench/app whose pyproject.toml differs by a trailing comment, so the
#      dependency step re-runs (COPY pyproject.toml uv.lock misses) while uv's cache mount is kept:
#      no wheel may be fetched. (Not `--no-cache`: on this engine it also discards cache mounts,
#      moby/buildkit#1364.)
#   5. ADD-PACKAGE (scenario 3): build a copy with bench/app/variants/add-package's pyproject.toml
#      and uv.lock (again with a trailing comment, so no earlier run's layer can be reused): exactly
#      the added packages' wheels are fetched (python-slugify, text-unidecode);
#   6. the images it built are removed and the server stopped (the base image tag stays).
#
#   bench/check.sh                      # docker build (DOCKER_BUILDKIT=1, the engine's BuildKit)
#   BUILDER=buildx bench/check.sh       # docker buildx build --load instead
#   SERVE_ARGS="--latency-ms 50 --mbps 20" bench/check.sh   # a slower, PyPI-like index
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PORT=8765
TAG=dockwarm-bench/app:check
BUILDER="${BUILDER:-docker}"
tmp=$(mktemp -d /tmp/dockwarm-bench-check.XXXXXX)
log="$tmp/index.log"
server=""
images=()
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    docker image rm -f "$TAG" >/dev/null 2>&1 || true
    for i in "${images[@]}"; do docker image rm -f "$i" >/dev/null 2>&1 || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
wheel_gets() { awk -F'\t' '$2 == "wheel" && $3 == "GET" && $5 == 200' "$log" | wc -l; }

# build CONTEXT [extra flags...]: build and remember the image id for cleanup
build() {
    local context=$1; shift
    case "$BUILDER" in
        docker) DOCKER_BUILDKIT=1 /usr/bin/docker build --network host --progress plain "$@" -t "$TAG" "$context" ;;
        buildx) docker buildx build --network host --progress plain --load "$@" -t "$TAG" "$context" ;;
        *) echo "BUILDER must be docker or buildx" >&2; exit 2 ;;
    esac
    local rc=$?
    images+=("$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null)")
    return $rc
}
# run NAME CONTEXT [flags...]: one timed build, its wheel downloads counted from an empty log
run() {
    local name=$1; shift
    : >"$log"
    local t; t=$(now)
    build "$@" >"$tmp/$name.log" 2>&1 || { tail -40 "$tmp/$name.log"; echo "check: $name build FAILED"; exit 1; }
    secs=$(elapsed "$t")
    gets=$(wheel_gets)
    fetched=$(awk -F'\t' '$2 == "wheel" && $3 == "GET" && $5 == 200 { print $4 }' "$log" | sort)
    dupes=$(printf '%s\n' "$fetched" | { grep . || true; } | uniq -d | wc -l)
    { grep -E 'Prepared|Installed|Bytecode|Successfully installed' "$tmp/$name.log" || true; } | sed "s/^/  $name: /"
    echo "check: $name build ${secs}s, $gets wheels fetched, $dupes of them more than once"
}

"$here/base-image.sh"
"$here/index/fetch.sh"

# SERVE_ARGS: e.g. "--latency-ms 50 --mbps 20" to make downloads cost what they would from PyPI
python3 "$here/index/serve.py" --port "$PORT" --log "$log" ${SERVE_ARGS:-} >"$tmp/serve.out" 2>&1 &
server=$!
for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/simple/" >/dev/null 2>&1 && break
    sleep 0.2
done
cat "$tmp/serve.out"

# What the image needs: the lock's non-dev packages, as uv would install them on python 3.11.2.
expected=$(cd "$here/app" && python3 - <<'EOF'
import tomllib
lock = tomllib.load(open("uv.lock", "rb"))
pkgs = {p["name"]: p for p in lock["package"]}
root = next(p for p in lock["package"] if "virtual" in p.get("source", {}) or "editable" in p.get("source", {}))
def marker_ok(m):  # the markers this lock uses, for linux x86_64 CPython 3.11.2
    env = {"python_full_version": "3.11.2", "sys_platform": "linux", "platform_machine": "x86_64",
           "platform_python_implementation": "CPython", "implementation_name": "cpython"}
    if not m:
        return True
    import re
    def cmp(a, op, b):
        if a in ("python_full_version",):
            av, bv = tuple(map(int, env[a].split("."))), tuple(map(int, b.split(".")))
            return {"<": av < bv, "<=": av <= bv, ">": av > bv, ">=": av >= bv, "==": av == bv, "!=": av != bv}[op]
        return {"==": env[a] == b, "!=": env[a] != b}[op]
    expr = re.sub(r"(\w+) (==|!=|<=|>=|<|>) '([^']*)'", lambda x: str(cmp(*x.groups())), m)
    return eval(expr)
seen, todo = set(), [d for d in root.get("dependencies", [])]
while todo:
    d = todo.pop()
    if not marker_ok(d.get("marker")) or d["name"] in seen:
        continue
    seen.add(d["name"])
    p = pkgs[d["name"]]
    todo += p.get("dependencies", [])
    for extra in d.get("extra", []):
        todo += p.get("optional-dependencies", {}).get(extra, [])
print(len(seen))
EOF
)
echo "check: the image needs $expected locked packages + uv's wheel = $((expected + 1)) wheels"

ok=1
fail() { echo "check: $*"; ok=0; }

"$here/drop-cache-mounts.sh"
run cold "$here/app" --no-cache
cold=$secs
[ "$gets" -eq $((expected + 1)) ] || fail "cold: expected $((expected + 1)) wheel downloads, got $gets"
[ "$dupes" -eq 0 ] || fail "cold: some wheels were fetched more than once"
docker run --rm "$TAG" python -c 'import app.main, fastapi, sqlalchemy, pydantic; print("check: import ok: fastapi", fastapi.__version__, "sqlalchemy", sqlalchemy.__version__, "pydantic", pydantic.VERSION)'

mkdir -p "$tmp/warm"
cp -a "$here/app/." "$tmp/warm/"
printf '\n# check.sh %s\n' "$(date +%s%N)" >>"$tmp/warm/pyproject.toml"
run warm "$tmp/warm"
warm=$secs
grep -q 'Successfully installed uv' "$tmp/warm.log" && fail "warm: the base stage was not cached"
grep -q 'Installed [0-9]* packages' "$tmp/warm.log" || fail "warm: the dependency step did not re-run"
[ "$gets" -eq 0 ] || fail "warm: $gets wheels fetched, expected none"

mkdir -p "$tmp/variant"
cp -a "$here/app/." "$tmp/variant/"
cp "$here/app/variants/add-package/pyproject.toml" "$here/app/variants/add-package/uv.lock" "$tmp/variant/"
printf '\n# check.sh %s\n' "$(date +%s%N)" >>"$tmp/variant/pyproject.toml"   # never a cached layer
run add-package "$tmp/variant"
variant=$secs
printf '%s\n' "$fetched" | sed 's/^/  add-package fetched: /'
[ "$gets" -eq 2 ] || fail "add-package: $gets wheels fetched, expected 2 (python-slugify, text-unidecode)"
docker run --rm "$TAG" python -c 'import slugify; print("check: import ok:", slugify.slugify("Dockwarm Bench"))'

echo "check: times: cold ${cold}s, warm ${warm}s, add-package ${variant}s"
[ "$ok" = 1 ] && echo "check: OK" || { echo "check: FAILED"; exit 1; }
