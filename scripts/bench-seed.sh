#!/usr/bin/env bash
# The realistic benchmark of issue 5: the hand-made Docker caching of the seed
# (shared/seed/docker-caching.md: cache volumes, DOCKER_BUILDKIT=1, `docker-compose build` in each
# workspace) against dockwarm (`dockwarm init` in each workspace; hooks and daemon do the rest), on
# bench/app (FastAPI service, 59 installed packages from a local index), side by side in one run.
#
#   scripts/bench-seed.sh            # 3 runs of each contender, writes docs/benchmarks.md + .png
#   QUICK=1 scripts/bench-seed.sh    # 1 run (development)
#
# Scenarios, each timed from the user's point of view ("can up" = `docker compose up` can start the
# service without building):
#   s1   first build on an empty builder cache (main checkout)
#   s2   a second workspace (`git worktree add` + its setup) until it can up
#   s3a  a lockfile change adding one package (bench/app-variant.sh add-package), committed on a
#        branch in one workspace, until that workspace can up
#   s3b  two other workspaces `git checkout` that change: time until each can up (mean of the two)
#   s5   a teammate's source change (no lockfile change) arrives with `git fetch` on main; then a
#        new workspace on it (sources unlike any image's) until it can up. As in s6, for dockwarm
#        the clock starts after the fetch's ahead prebuild (the commit's whole image) finished.
#   s6   a teammate's lockfile change arrives with `git fetch` (a bare "origin" and a teammate's
#        clone of it; the teammate re-locks: uv.lock's bytes change, its packages do not, so the
#        install step runs again from a warm uv cache), then a new workspace on the fetched
#        commit until it can up. The clock starts at `git worktree add`; for dockwarm only after
#        the fetch's ahead prebuild has finished (its duration is in the note): the premise of
#        issue 14 is that fetches (Conductor's own, or the user's) come before new workspaces.
#   s4   `docker builder prune -af`, then a new workspace until it can up
# Contenders:
#   seed      create the *_uv_cache/*_pip_cache volumes, export DOCKER_BUILDKIT=1
#             COMPOSE_DOCKER_CLI_BUILD=1, `docker-compose build` (v1) in the workspace; can up = the
#             build finished.
#   dockwarm  `dockwarm init` in the workspace (the Conductor setup line); can up = the image
#             `<compose project>-api` exists (for s3: carries the new dependency fingerprint).
# Every "can up" is then checked, untimed: `up -d` (compose v1 for the seed, v2 `docker compose up
# --no-build --pull never` for dockwarm), GET /health, `down`; after s3 also `import slugify`.
#
# NOT neutral: between contenders and in s4 it runs `docker builder prune -af`, which empties the
# engine's WHOLE BuildKit cache (other projects' too). It says so each time. Images: only the ones
# it made (names dwbench*, dockwarm/dwbench*, label dev.dockwarm.project=dwbench*) are removed.
# Kept between runs, as caches: the base image dockwarm-bench/python:bookworm, bench/index/wheels,
# and the matplotlib venv (DWBENCH_VENV, default /tmp/dwbench-venv).
#
# Environment:
#   QUICK=1 | RUNS=N       number of runs per contender (default 3; QUICK: 1)
#   INDEX_HOST=ADDR        where the index listens. Default 127.0.0.1: the fixture unchanged, builds
#                          reach it through compose's `build.network: host`. INDEX_HOST=bridge (the
#                          docker bridge's gateway, e.g. 172.17.0.1) points the benchmark's copies of
#                          uv.lock/Dockerfile/compose.yaml there instead, so that a dockwarm without
#                          `build.network` support (before e163091) can be measured at all.
#   CONTENDERS="seed dockwarm"   which ones to run
#   DOCKWARM=PATH          a dockwarm binary (default: `cargo build --release` of this checkout)
#   OUT=DIR                where benchmarks.md/.png go (default docs/; QUICK=1: /tmp/dwbench-quick)
#   KEEP=1                 keep the work directory (logs) at the end
#   WAIT_LIMIT=S           give up on one "can up" after S seconds (default 300)
#   PRUNE=0                a functional check on a shared machine: never `docker builder prune`
#                          (other users' caches stay; s1 and s4 then measure nothing meaningful)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
bench="$repo/bench"
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then RUNS="${RUNS:-1}"; OUT="${OUT:-/tmp/dwbench-quick}"; else RUNS="${RUNS:-3}"; OUT="${OUT:-$repo/docs}"; fi
CONTENDERS="${CONTENDERS:-seed dockwarm}"
WAIT_LIMIT="${WAIT_LIMIT:-300}"
PORT=8765
DWBENCH_VENV="${DWBENCH_VENV:-/tmp/dwbench-venv}"

say() { printf 'dwbench: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
t_start=$(now)

for tool in docker docker-compose git python3 curl; do
    command -v "$tool" >/dev/null || { say "needs $tool on PATH"; exit 2; }
done
docker compose version >/dev/null 2>&1 || { say "needs compose v2 (docker compose)"; exit 2; }
docker buildx version >/dev/null 2>&1 || { say "needs docker buildx"; exit 2; }

work=$(mktemp -d /tmp/dwbench.XXXXXX)
results="$work/results.tsv"
: >"$results"
idxlog="$work/index.log"
server=""
state_dirs=()
compose_up=()      # "v1|v2 DIR" of projects that may still be up
made_ids="$work/image-ids"   # image IDs the benchmark's builds produced
: >"$made_ids"

# --- cleanup ---------------------------------------------------------------------------------------
# Remove one image the benchmark made: untag only our names when foreign tags share it.
remove_image() {
    local id=$1 tags foreign=0
    tags=$(docker image inspect -f '{{range .RepoTags}}{{.}} {{end}}' "$id" 2>/dev/null) || return 0
    for t in $tags; do
        case "$t" in dwbench*|dockwarm/dwbench*) ;; *) foreign=1 ;; esac
    done
    if [ "$foreign" = 1 ]; then
        for t in $tags; do case "$t" in dwbench*|dockwarm/dwbench*) docker image rm "$t" >/dev/null 2>&1 || true ;; esac; done
    else
        docker image rm -f "$id" >/dev/null 2>&1 || true
    fi
}
remove_bench_images() {
    local ids
    ids=$( {
        docker image ls --format '{{.Repository}} {{.ID}}' | awk '$1 ~ /^(dwbench|dockwarm\/dwbench)/ { print $2 }'
        docker image ls -q --filter label=dev.dockwarm.managed=true | sort -u | xargs -r docker image inspect -f '{{.Id}} {{index .Config.Labels "dev.dockwarm.project"}}' 2>/dev/null | awk '$2 ~ /^dwbench/ { print $1 }'
        cat "$made_ids"
    } | sort -u)
    for id in $ids; do remove_image "$id"; done
    : >"$made_ids"
}
compose_down_all() {
    local entry kind dir
    for entry in "${compose_up[@]+"${compose_up[@]}"}"; do
        kind=${entry%% *}; dir=${entry#* }
        [ -d "$dir" ] || continue
        if [ "$kind" = v1 ]; then (cd "$dir" && docker-compose down -t 1 >/dev/null 2>&1) || true
        else (cd "$dir" && docker compose down -t 1 >/dev/null 2>&1) || true; fi
    done
    compose_up=()
}
stop_daemons() {
    local s
    for s in "${state_dirs[@]+"${state_dirs[@]}"}"; do
        [ -d "$s" ] && DOCKWARM_STATE_DIR="$s" "$DOCKWARM" daemon stop >/dev/null 2>&1 || true
    done
    state_dirs=()
}
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    say "cleaning up"
    compose_down_all
    [ -n "${DOCKWARM:-}" ] && stop_daemons
    if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; say "index server stopped"; fi
    remove_bench_images
    docker volume ls -q --filter label=dwbench=1 | xargs -r docker volume rm -f >/dev/null 2>&1
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

announce_prune() {
    if [ "${PRUNE:-1}" = 0 ]; then say "PRUNE=0: not pruning ($1)"; return 0; fi
    say "ANNOUNCE: docker builder prune -af ($1) -- this empties the engine's WHOLE BuildKit build cache, every project's, not only the benchmark's"
    docker builder prune -af >/dev/null
}

# --- fixtures --------------------------------------------------------------------------------------
say "work directory $work; $RUNS run(s) of: $CONTENDERS"
"$bench/base-image.sh"
# Wheels: reuse another worktree's copy of the (gitignored) folder before going to the network.
mkdir -p "$bench/index/wheels"
if [ "$(ls "$bench/index/wheels" | wc -l)" -lt 68 ]; then
    while read -r key path; do
        [ "$key" = worktree ] && [ -d "$path/bench/index/wheels" ] && [ "$path" != "$repo" ] || continue
        cp -n "$path/bench/index/wheels/"* "$bench/index/wheels/" 2>/dev/null || true
    done < <(git -C "$repo" worktree list --porcelain)
fi
"$bench/index/fetch.sh" | tail -1

INDEX_HOST="${INDEX_HOST:-127.0.0.1}"
if [ "$INDEX_HOST" = bridge ]; then
    INDEX_HOST=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)
    INDEX_HOST=${INDEX_HOST:-172.17.0.1}
fi
if curl -fsS -m 2 "http://$INDEX_HOST:$PORT/simple/" >/dev/null 2>&1; then
    say "something already listens on $INDEX_HOST:$PORT; stop it first"; exit 1
fi
python3 "$bench/index/serve.py" --host "$INDEX_HOST" --port "$PORT" --log "$idxlog" >"$work/serve.out" 2>&1 &
server=$!
for _ in $(seq 50); do curl -fsS "http://$INDEX_HOST:$PORT/simple/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://$INDEX_HOST:$PORT/simple/" >/dev/null || { cat "$work/serve.out"; say "index did not start"; exit 1; }
say "index on http://$INDEX_HOST:$PORT (pid $server), log $idxlog"
wheels() { awk -F'\t' '$2 == "wheel" && $3 == "GET" && $5 == 200' "$idxlog" | wc -l; }
wheel_names_since() { awk -F'\t' -v n="$1" '$2 == "wheel" && $3 == "GET" && $5 == 200 { if (++i > n) print $4 }' "$idxlog" | sed 's/-[0-9].*//' | sort | uniq -c | awk '{ printf "%s%s", (NR > 1 ? "," : ""), ($1 > 1 ? $2 "x" $1 : $2) }'; }

# --- dockwarm --------------------------------------------------------------------------------------
if [ -z "${DOCKWARM:-}" ]; then
    say "building dockwarm (cargo build --release)"
    (cd "$repo" && cargo build --release --quiet)
    DOCKWARM="${CARGO_TARGET_DIR:-$repo/target}/release/dockwarm"
fi
[ -x "$DOCKWARM" ] || { say "no dockwarm binary at $DOCKWARM"; exit 2; }
# The installed hooks run the `dockwarm` found on PATH before the one recorded at install time:
# put this one first, or an older installed dockwarm would answer the hooks.
mkdir -p "$work/bin" && ln -sf "$(cd "$(dirname "$DOCKWARM")" && pwd)/$(basename "$DOCKWARM")" "$work/bin/dockwarm"
export PATH="$work/bin:$PATH"
dw_commit=$(git -C "$repo" rev-parse --short HEAD)
git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock || dw_commit="$dw_commit+uncommitted"
say "dockwarm $DOCKWARM at $dw_commit"

# --- the project under test ------------------------------------------------------------------------
# bench/app as the root of its own repository (compose file at the root, as users have it).
template="$work/template"
mkdir -p "$template"
(cd "$bench/app" && tar --exclude=./variants -cf - .) | tar -C "$template" -xf -
point_at_index() {  # FILE...: the loopback index named by the fixture -> INDEX_HOST
    [ "$INDEX_HOST" = 127.0.0.1 ] && return 0
    sed -i "s#127\.0\.0\.1:$PORT#$INDEX_HOST:$PORT#g" "$@"
}
point_at_index "$template/uv.lock" "$template/Dockerfile" "$template/compose.yaml"
[ "$INDEX_HOST" = 127.0.0.1 ] || say "the benchmark's copies of uv.lock, Dockerfile and compose.yaml name the index at $INDEX_HOST:$PORT (reachable from a build without host networking)"

git_q() { git -c user.name=dwbench -c user.email=dwbench@localhost -c init.defaultBranch=main -c advice.detachedHead=false "$@"; }
new_repo() {  # DIR
    mkdir -p "$1"
    cp -a "$template/." "$1/"
    (cd "$1" && git_q init -q && git_q add -A && git_q commit -qm "bench app")
}

# s6: an "origin" for the main checkout, and a teammate's clone of it.
s6_setup() {  # MAIN BASE
    local br
    git_q clone -q --bare "$1" "$2/origin.git"
    git -C "$1" remote add origin "$2/origin.git"
    git_q -C "$1" fetch -q origin
    br=$(git -C "$1" symbolic-ref --short HEAD)
    git -C "$1" remote set-head origin "$br" >/dev/null
    git -C "$1" branch -q --set-upstream-to "origin/$br"
    git_q clone -q "$2/origin.git" "$2/teammate"
}
s5_teammate_push() {  # BASE RUN: the teammate changes a source file and pushes; prints the commit
    (cd "$1/teammate" && echo "# s5 $2" >>app/main.py \
        && git_q commit -qam "teammate: a source change" && git_q push -q origin HEAD && git rev-parse HEAD)
}
s6_teammate_push() {  # BASE: the teammate re-locks and pushes; prints the pushed commit
    (cd "$1/teammate" && echo "# relocked by a teammate" >>uv.lock \
        && git_q commit -qam "teammate: relock" && git_q push -q origin HEAD && git rev-parse HEAD)
}

record() {  # run contender scenario seconds fetches note
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    say "  run $1 $2 $3: ${4:+${4}s, }${5} wheels fetched${6:+ ($6)}"
}

image_field() {  # NAME -> "ID FINGERPRINT" or nothing
    docker image inspect -f '{{.Id}} {{index .Config.Labels "dev.dockwarm.fingerprint"}}' "$1" 2>/dev/null || true
}
note_image() {  # NAME: remember its ID for cleanup
    local id; id=$(docker image inspect -f '{{.Id}}' "$1" 2>/dev/null) && echo "$id" >>"$made_ids" || true
}

port_n=0
verify() {  # v1|v2 DIR IMAGE [python-import]: untimed check that the service starts from the image
    local kind=$1 dir=$2 image=$3 imp=${4:-} port ok=no
    port_n=$((port_n + 1)); port=$((18100 + port_n % 500))
    compose_up+=("$kind $dir")
    if [ "$kind" = v1 ]; then
        (cd "$dir" && CONDUCTOR_PORT=$port docker-compose up --no-build -d) >>"$work/verify.log" 2>&1 || true
    else
        (cd "$dir" && CONDUCTOR_PORT=$port docker compose up --no-build --pull never -d) >>"$work/verify.log" 2>&1 || true
    fi
    for _ in $(seq 100); do
        curl -fsS -m 1 "http://127.0.0.1:$port/health" >/dev/null 2>&1 && { ok=yes; break; }
        sleep 0.2
    done
    if [ -n "$imp" ] && [ "$ok" = yes ]; then
        docker run --rm --network none "$image" python -c "import $imp" >>"$work/verify.log" 2>&1 || ok="no-$imp"
    fi
    if [ "$kind" = v1 ]; then (cd "$dir" && docker-compose down -t 1) >>"$work/verify.log" 2>&1 || true
    else (cd "$dir" && docker compose down -t 1) >>"$work/verify.log" 2>&1 || true; fi
    unset 'compose_up[${#compose_up[@]}-1]'
    say "    verified $image: up + /health: $ok"
    [ "$ok" = yes ]
}

# --- contender: the seed's hand-made way -------------------------------------------------------------
seed_build() {  # DIR LOGNAME: the seed's build step in a workspace
    (cd "$1" && DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 docker-compose build) >"$work/$2.log" 2>&1
}
seed_run() {
    local r=$1 P="dwbench-seed-r$1" base="$work/seed-r$1" t n note
    local M="$base/$P" W2="$base/$P-ws2" W3="$base/$P-ws3" W4="$base/$P-ws4" W5="$base/$P-ws5"
    announce_prune "reset before the seed's run $r"
    new_repo "$M"

    say "run $r seed s1: first build on an empty builder cache"
    n=$(wheels); t=$(now)
    docker volume create --label dwbench=1 dwbench_seed_global_uv_cache >/dev/null
    docker volume create --label dwbench=1 dwbench_seed_global_pip_cache >/dev/null
    seed_build "$M" "seed-r$r-s1" || { tail -20 "$work/seed-r$r-s1.log"; return 1; }
    record "$r" seed s1 "$(since "$t")" "$(( $(wheels) - n ))" ""
    note_image "${P}_api"; verify v1 "$M" "${P}_api" || true

    say "run $r seed s2: a second workspace"
    n=$(wheels); t=$(now)
    git -C "$M" worktree add -q -b ws2 "$W2"
    seed_build "$W2" "seed-r$r-s2" || { tail -20 "$work/seed-r$r-s2.log"; return 1; }
    record "$r" seed s2 "$(since "$t")" "$(( $(wheels) - n ))" ""
    note_image "${P}-ws2_api"; verify v1 "$W2" "${P}-ws2_api" || true

    # s3 setup (untimed): a third workspace, built
    git -C "$M" worktree add -q -b ws3 "$W3"
    seed_build "$W3" "seed-r$r-s3setup"; note_image "${P}-ws3_api"

    say "run $r seed s3: add a package on a branch in ws2, then check it out in main and ws3"
    local n3; n3=$(wheels); n=$n3; t=$(now)
    "$bench/app-variant.sh" add-package "$W2" >/dev/null && point_at_index "$W2/uv.lock"
    (cd "$W2" && git_q commit -qam "add python-slugify")
    seed_build "$W2" "seed-r$r-s3a" || { tail -20 "$work/seed-r$r-s3a.log"; return 1; }
    record "$r" seed s3a "$(since "$t")" "$(( $(wheels) - n ))" ""
    note_image "${P}-ws2_api"
    local d name
    for d in "$M" "$W3"; do
        name=$(basename "$d"); n=$(wheels); t=$(now)
        (cd "$d" && git_q checkout -q -b "$name-slugify" ws2)
        seed_build "$d" "seed-r$r-s3b-$name" || { tail -20 "$work/seed-r$r-s3b-$name.log"; return 1; }
        record "$r" seed "s3b:$name" "$(since "$t")" "$(( $(wheels) - n ))" ""
        note_image "${name}_api"
    done
    record "$r" seed s3total "" "$(( $(wheels) - n3 ))" "$(wheel_names_since "$n3")"
    verify v1 "$W2" "${P}-ws2_api" slugify || true
    verify v1 "$M" "${P}_api" slugify || true
    verify v1 "$W3" "${P}-ws3_api" slugify || true

    say "run $r seed s5: a new workspace on the newest main, fetched (sources unlike any image's)"
    s6_setup "$M" "$base"
    s5_teammate_push "$base" "$r" >/dev/null
    git_q -C "$M" fetch -q origin
    n=$(wheels); t=$(now)
    git_q -C "$M" worktree add -q -b ws5 "$W5" "@{upstream}"
    seed_build "$W5" "seed-r$r-s5" || { tail -20 "$work/seed-r$r-s5.log"; return 1; }
    record "$r" seed s5 "$(since "$t")" "$(( $(wheels) - n ))" ""
    note_image "${P}-ws5_api"; verify v1 "$W5" "${P}-ws5_api" || true

    say "run $r seed s6: a teammate's lockfile change fetched, then a new workspace on it"
    local W6="$base/$P-ws6"
    s6_teammate_push "$base" >/dev/null
    git_q -C "$M" fetch -q origin
    n=$(wheels); t=$(now)
    git_q -C "$M" worktree add -q -b ws6 "$W6" "@{upstream}"
    seed_build "$W6" "seed-r$r-s6" || { tail -20 "$work/seed-r$r-s6.log"; return 1; }
    record "$r" seed s6 "$(since "$t")" "$(( $(wheels) - n ))" ""
    note_image "${P}-ws6_api"; verify v1 "$W6" "${P}-ws6_api" || true

    announce_prune "seed s4: BuildKit's cache mounts and layers gone"
    say "run $r seed s4: a new workspace after the prune"
    n=$(wheels); t=$(now)
    git -C "$M" worktree add -q -b ws4 "$W4"
    seed_build "$W4" "seed-r$r-s4" || { tail -20 "$work/seed-r$r-s4.log"; return 1; }
    record "$r" seed s4 "$(since "$t")" "$(( $(wheels) - n ))" ""
    note_image "${P}-ws4_api"; verify v1 "$W4" "${P}-ws4_api" || true
}

# --- contender: dockwarm ---------------------------------------------------------------------------
# dw_wait NAME NOT_FP T0 WORKSPACE: wait until image NAME exists and its fingerprint label differs from
# NOT_FP ("" = any); prints the seconds since T0. Fails after WAIT_LIMIT or when the daemon reports
# the workspace's build failed.
dw_wait() {
    local out body i sock=/var/run/docker.sock
    case "${DOCKER_HOST:-}" in unix://*) sock=${DOCKER_HOST#unix://} ;; esac
    # Each look asks the engine's API itself: a poll by `docker image inspect` (~30 ms of CPU
    # per process) would take a share of the 2 cores from the very build being timed, which
    # the hand-made way's figure does not pay. (BuildKit's naming of a built image sends no
    # engine event here, so there is nothing to wait on instead.) The first second: `curl`
    # every 20 ms (a few ms of CPU each, no start-up to wait for); then one python process
    # that looks every 20 ms for ~1 ms of CPU each.
    for i in $(seq 50); do
        body=$(curl -s --unix-socket "$sock" "http://engine/images/$1/json" || true)
        if [[ $body == '{"Id":"'* ]] && { [ -z "$2" ] || [[ $body != *"\"dev.dockwarm.fingerprint\":\"$2\""* ]]; }; then
            since "$3"; echo
            body=${body#'{"Id":"'}; echo "${body%%\"*}" >>"$made_ids"
            return 0
        fi
        sleep 0.02
    done
    out=$(python3 - "$1" "$2" "$3" "$4" "$WAIT_LIMIT" "$DOCKWARM_STATE_DIR/logs/daemon.log" <<'PY'
import http.client, json, os, re, socket, sys, time
name, not_fp, t0, ws, limit, daemon_log = sys.argv[1:7]
t0, limit = float(t0), float(limit)
host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
path = host[len("unix://"):] if host.startswith("unix://") else "/var/run/docker.sock"
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
failed = re.compile(r"failed.*%s|%s.*failed" % (re.escape(ws), re.escape(ws)))
conn, n = Conn("engine"), 0
while True:
    try:
        conn.request("GET", "/images/%s/json" % name)
        r = conn.getresponse()
        body = r.read()
    except (OSError, http.client.HTTPException):
        conn, body, r = Conn("engine"), b"", None
    if r is not None and r.status == 200:
        at = time.time() - t0
        image = json.loads(body)
        fp = ((image.get("Config") or {}).get("Labels") or {}).get("dev.dockwarm.fingerprint", "")
        if not not_fp or fp != not_fp:
            print("%.2f %s" % (at, image["Id"]))
            sys.exit(0)
    n += 1
    if n % 50 == 0:
        if time.time() - t0 > limit:
            print("timeout"); sys.exit(1)
        try:
            if any(failed.search(l) for l in open(daemon_log)):
                print("failed"); sys.exit(1)
        except OSError:
            pass
    time.sleep(0.02)
PY
) || { echo "$out"; return 1; }
    echo "${out#* }" >>"$made_ids"
    echo "${out%% *}"
}
# dw_wait_ahead DIR REF COMMIT T0: untimed wait until the daemon's look ahead at REF@COMMIT is
# done (every image's dependency stage and, where wanted, its whole image); prints the seconds
# since T0 and the states ("built", "warm+built", ...).
dw_wait_ahead() {
    local dir=$1 ref=$2 commit=$3 t0=$4 st=""
    while awk -v a="$(since "$t0")" -v b="$WAIT_LIMIT" 'BEGIN { exit !(a < b) }'; do
        st=$(cd "$dir" && "$DOCKWARM" status --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
for a in s.get("ahead", []):
    if a["ref"] == sys.argv[1] and a["commit"] == sys.argv[2]:
        print(",".join(i["state"] + ("+" + i["workspace"] if i.get("workspace") else "") for i in a["images"]) or "none")
' "$ref" "$commit" 2>/dev/null || true)
        case "$st" in *queued*|*building*|"") sleep 0.2 ;; *) echo "$(since "$t0") $st"; return 0 ;; esac
    done
    echo "timeout $st"; return 1
}
dw_fail() {  # what went wrong, from dockwarm's own logs
    say "  dockwarm did not make the image: $1"
    tail -15 "$DOCKWARM_STATE_DIR/logs/daemon.log" 2>/dev/null | sed 's/^/    daemon.log: /'
    "$DOCKWARM" status 2>&1 | head -20 | sed 's/^/    status: /' || true
    local l; l=$(find "$DOCKWARM_STATE_DIR" -name '*.log' -newer "$work/template" ! -name daemon.log -printf '%T@ %p\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2-)
    if [ -n "$l" ]; then grep -E 'ERROR|error|failed|refused' "$l" | tail -5 | sed 's/^/    build log: /'; fi
}
dw_init() {  # DIR LOGNAME
    (cd "$1" && "$DOCKWARM" init) >"$work/$2.log" 2>&1
}
dockwarm_run() {
    local r=$1 P="dwbench-dw-r$1" base="$work/dw-r$1" t n s out
    local M="$base/$P" W2="$base/$P-ws2" W3="$base/$P-ws3" W4="$base/$P-ws4" W5="$base/$P-ws5"
    export DOCKWARM_STATE_DIR="$work/dw-state-r$r"
    state_dirs+=("$DOCKWARM_STATE_DIR")
    announce_prune "reset before dockwarm's run $r"
    new_repo "$M"

    say "run $r dockwarm s1: first build on an empty builder cache"
    n=$(wheels); t=$(now)
    dw_init "$M" "dw-r$r-s1-init"; s=$(since "$t")
    out=$(dw_wait "$P-api" "" "$t" "$M") || { dw_fail "$out"; return 1; }
    record "$r" dockwarm s1 "$out" "$(( $(wheels) - n ))" "init returned after ${s}s"
    verify v2 "$M" "$P-api" || true

    say "run $r dockwarm s2: a second workspace"
    n=$(wheels); t=$(now)
    git -C "$M" worktree add -q -b ws2 "$W2"
    dw_init "$W2" "dw-r$r-s2-init"; s=$(since "$t")
    out=$(dw_wait "$P-ws2-api" "" "$t" "$W2") || { dw_fail "$out"; return 1; }
    record "$r" dockwarm s2 "$out" "$(( $(wheels) - n ))" "worktree add + init returned after ${s}s"
    verify v2 "$W2" "$P-ws2-api" || true

    # s3 setup (untimed): a third workspace, warm
    t=$(now)
    git -C "$M" worktree add -q -b ws3 "$W3"
    dw_init "$W3" "dw-r$r-s3setup-init"
    out=$(dw_wait "$P-ws3-api" "" "$t" "$W3") || { dw_fail "$out"; return 1; }

    say "run $r dockwarm s3: add a package on a branch in ws2, then check it out in main and ws3"
    local old_fp n3; old_fp=$(image_field "$P-ws2-api"); old_fp=${old_fp#* }
    n3=$(wheels); n=$n3; t=$(now)
    "$bench/app-variant.sh" add-package "$W2" >/dev/null && point_at_index "$W2/uv.lock"
    (cd "$W2" && git_q commit -qam "add python-slugify")
    out=$(dw_wait "$P-ws2-api" "$old_fp" "$t" "$W2") || { dw_fail "$out"; return 1; }
    record "$r" dockwarm s3a "$out" "$(( $(wheels) - n ))" ""
    local tm tw outm outw
    n=$(wheels)
    tm=$(now); (cd "$M" && git_q checkout -q -b "$P-slugify" ws2)
    tw=$(now); (cd "$W3" && git_q checkout -q -b "$P-ws3-slugify" ws2)
    # both are polled together: each one's time runs from its own checkout
    (dw_wait "$P-api" "$old_fp" "$tm" "$M" >"$work/wait-m") & local pm=$!
    (dw_wait "$P-ws3-api" "$old_fp" "$tw" "$W3" >"$work/wait-w") & local pw=$!
    wait $pm || { dw_fail "main: $(cat "$work/wait-m")"; wait $pw || true; return 1; }
    wait $pw || { dw_fail "ws3: $(cat "$work/wait-w")"; return 1; }
    outm=$(cat "$work/wait-m"); outw=$(cat "$work/wait-w")
    record "$r" dockwarm "s3b:$P" "$outm" "$(( $(wheels) - n ))" "fetches of both switches"
    record "$r" dockwarm "s3b:$P-ws3" "$outw" "0" "counted with the other switch"
    record "$r" dockwarm s3total "" "$(( $(wheels) - n3 ))" "$(wheel_names_since "$n3")"
    local new_fp; new_fp=$(cd "$M" && "$DOCKWARM" fingerprint --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d.get("fingerprint") or d.get("images",[{}])[0].get("fingerprint",""))' 2>/dev/null || true)
    for s in "$P-api" "$P-ws2-api" "$P-ws3-api"; do
        f=$(image_field "$s"); [ -z "$new_fp" ] || [ "${f#* }" = "$new_fp" ] || say "    WARNING: $s has fingerprint ${f#* }, dockwarm fingerprint says $new_fp"
    done
    verify v2 "$W2" "$P-ws2-api" slugify || true
    verify v2 "$M" "$P-api" slugify || true
    verify v2 "$W3" "$P-ws3-api" slugify || true

    say "run $r dockwarm s5: a new workspace on the newest main, fetched (sources unlike any image's)"
    local t5 ahead5 pushed5 upstream
    s6_setup "$M" "$base"
    upstream=$(git -C "$M" rev-parse --symbolic-full-name "@{upstream}")
    pushed5=$(s5_teammate_push "$base" "$r")
    t5=$(now)
    git_q -C "$M" fetch -q origin
    # The daemon builds the fetched commit's whole image ahead (untimed: a workspace starts
    # from main later), noted like scenario 6's.
    ahead5=$(dw_wait_ahead "$M" "$upstream" "$pushed5" "$t5") \
        || { dw_fail "the fetched commit was not built ahead ($ahead5)"; return 1; }
    n=$(wheels); t=$(now)
    git_q -C "$M" worktree add -q -b ws5 "$W5" "$upstream"
    dw_init "$W5" "dw-r$r-s5-init"
    out=$(dw_wait "$P-ws5-api" "" "$t" "$W5") || { dw_fail "$out"; return 1; }
    record "$r" dockwarm s5 "$out" "$(( $(wheels) - n ))" "ahead (${ahead5#* }) done ${ahead5%% *}s after the fetch"
    verify v2 "$W5" "$P-ws5-api" || true

    say "run $r dockwarm s6: a teammate's lockfile change fetched, then a new workspace on it"
    local W6="$base/$P-ws6" pushed tf ahead_s
    pushed=$(s6_teammate_push "$base")
    n=$(wheels); tf=$(now)
    git_q -C "$M" fetch -q origin
    # The fetch's prebuild runs ahead of any checkout; wait for it (untimed), noting how long.
    local ahead6 st
    ahead6=$(dw_wait_ahead "$M" "$upstream" "$pushed" "$tf") \
        || { dw_fail "the fetched commit was not prebuilt ahead ($ahead6)"; return 1; }
    ahead_s=${ahead6%% *}; st=${ahead6#* }
    t=$(now)
    git_q -C "$M" worktree add -q -b ws6 "$W6" "$upstream"
    dw_init "$W6" "dw-r$r-s6-init"
    out=$(dw_wait "$P-ws6-api" "" "$t" "$W6") || { dw_fail "$out"; return 1; }
    record "$r" dockwarm s6 "$out" "$(( $(wheels) - n ))" "ahead prebuild ($st) done ${ahead_s}s after the fetch"
    verify v2 "$W6" "$P-ws6-api" || true

    announce_prune "dockwarm s4: BuildKit's cache mounts and layers gone"
    say "run $r dockwarm s4: a new workspace after the prune"
    n=$(wheels); t=$(now)
    git -C "$M" worktree add -q -b ws4 "$W4"
    dw_init "$W4" "dw-r$r-s4-init"
    out=$(dw_wait "$P-ws4-api" "" "$t" "$W4") || { dw_fail "$out"; return 1; }
    record "$r" dockwarm s4 "$out" "$(( $(wheels) - n ))" ""
    verify v2 "$W4" "$P-ws4-api" || true

    # let the daemon finish anything it still does before its images go
    for _ in $(seq 100); do
        # Not a pipe into grep -q: under pipefail its early exit would end the wait at once.
        st=$("$DOCKWARM" daemon status 2>/dev/null || true)
        grep -qE '^  (building|queued) ' <<<"$st" || break
        sleep 0.3
    done
    cp "$DOCKWARM_STATE_DIR/logs/daemon.log" "$work/dw-r$r-daemon.log" 2>/dev/null || true
}

# --- the runs --------------------------------------------------------------------------------------
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$RUNS"); do
    order=$CONTENDERS
    # alternate who goes first, so neither always runs on a just-pruned, idle machine
    [ $((r % 2)) = 0 ] && order=$(echo "$CONTENDERS" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
    for c in $order; do
        case "$c" in
            seed) seed_run "$r" || { say "run $r seed FAILED"; record "$r" seed failed "" 0 "see log"; } ;;
            dockwarm) dockwarm_run "$r" || { say "run $r dockwarm FAILED"; record "$r" dockwarm failed "" 0 "see log"; } ;;
        esac
        compose_down_all
        [ "$c" = dockwarm ] && stop_daemons
        remove_bench_images
        docker volume ls -q --filter label=dwbench=1 | xargs -r docker volume rm -f >/dev/null 2>&1 || true
        rm -rf "$work/seed-r$r" "$work/dw-r$r"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
total=$(since "$t_start")
say "all runs done in ${total}s"

# --- report ----------------------------------------------------------------------------------------
mkdir -p "$OUT"
facts="$work/facts.json"
python3 - "$facts" <<EOF
import json, platform, subprocess, sys
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception: return "?"
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
json.dump({
    "date": sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    "cpu": f"{sh('nproc')} cores, {cpu}",
    "memory": sh("free -h | awk '/^Mem:/ {print \$2}'"),
    "kernel": platform.release(),
    "engine": sh("docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})'"),
    "storage": sh("docker info -f '{{.Driver}}'"),
    "buildx": sh("docker buildx version | cut -d' ' -f2"),
    "compose_v1": sh("docker-compose version --short"),
    "compose_v2": sh("docker compose version --short"),
    "dockwarm": "$dw_commit",
    "runs": $RUNS,
    "index": "$INDEX_HOST:$PORT",
    "load": "$load_before -> $load_after",
    "total_s": "$total",
}, open(sys.argv[1], "w"), indent=1)
EOF
cp "$results" "$OUT/benchmarks.tsv" 2>/dev/null || true
python3 "$repo/scripts/bench-seed-report.py" "$results" "$facts" "$OUT/benchmarks.md"
if ! "$DWBENCH_VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    say "installing matplotlib into $DWBENCH_VENV (kept as a cache)"
    python3 -m venv "$DWBENCH_VENV" && "$DWBENCH_VENV/bin/pip" install -q matplotlib
fi
"$DWBENCH_VENV/bin/python" "$repo/scripts/bench-seed-report.py" --png "$results" "$facts" "$OUT/benchmarks.png"
say "wrote $OUT/benchmarks.md, $OUT/benchmarks.png ($OUT/benchmarks.tsv: every run)"
