#!/usr/bin/env bash
# The disk soak benchmark of issue 12: a simulated month of agent work on bench/app, for the
# hand-made way (the seed: `docker-compose build` in each workspace, nothing ever removed) and for
# dockwarm (`dockwarm init` per workspace, the daemon does the rest, a [prune] budget), recording
# the disk each contender's images use after every step.
#
#   scripts/bench-disk.sh              # 20 workspaces x 3 lockfile changes; docs/benchmarks.md + .png
#   QUICK=1 scripts/bench-disk.sh      # 3 workspaces x 1 change, report in /tmp/dwsoak-quick
#
# The month, the same for both contenders: the main checkout is set up; then for each of WS
# workspaces: `git worktree add` + its setup; CHANGES lockfile changes committed in it (each one
# a new uv.lock: a comment line naming contender, workspace and change, so every change is a new
# dependency stage for both contenders and neither reuses the other's BuildKit cache), each until
# the workspace can up again; then the workspace made two steps earlier is removed: every second
# one with `dockwarm archive` first (dockwarm only; the hand-made way has no such step), the others
# with a bare `git worktree remove` (as worktrunk's `wt remove`, or Conductor when its archive step
# failed). Left at the end: main and the last two workspaces, which must still be warm.
#
# "Disk" = unique bytes of the contender's images (names dwsoak-<contender>*, dockwarm/<...>,
# dockwarm's project label, and every image ID a build of the benchmark produced, untagged ones
# included), a layer shared by several images counted once, the base image's layers not counted:
# scripts/bench-disk-measure.py (independent of dockwarm's own accounting). BuildKit's cache is
# not counted (it is the engine's, shared by every session; this script never prunes it).
#
# Environment:
#   QUICK=1 | WS=N CHANGES=N     the month's size (default 20 x 3)
#   BUDGET=SIZE                  dockwarm.toml [prune] budget of the dockwarm contender (default 1GB)
#   CONTENDERS="seed dockwarm"   which ones to run; PARALLEL=1 runs them side by side
#   DOCKWARM=PATH                a dockwarm binary (default: `cargo build` of this checkout)
#   PORT=N                       the local index's port (default 8775)
#   OUT=DIR                      where benchmarks.md / bench-disk.png go (default docs/)
#   KEEP=1                       keep the work directory
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
bench="$repo/bench"
QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then WS="${WS:-3}"; CHANGES="${CHANGES:-1}"; OUT="${OUT:-/tmp/dwsoak-quick}"
else WS="${WS:-20}"; CHANGES="${CHANGES:-3}"; OUT="${OUT:-$repo/docs}"; fi
BUDGET="${BUDGET:-1GB}"
CONTENDERS="${CONTENDERS:-seed dockwarm}"
PORT="${PORT:-8775}"
WAIT_LIMIT="${WAIT_LIMIT:-600}"
VENV="${DWSOAK_VENV:-/tmp/dwsoak-venv}"
BASE=dwsoak/python:bookworm

say() { printf 'dwsoak: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.1f", b - a }'; }
t_start=$(now)

work=$(mktemp -d /tmp/dwsoak.XXXXXX)
results="$work/steps.tsv"
: >"$results"
server=""
export DOCKWARM_CONFIG=/nonexistent/dwsoak-user-config.toml

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    say "cleaning up"
    for s in "$work"/state-*; do
        [ -d "$s" ] && DOCKWARM_STATE_DIR="$s" "$DOCKWARM" daemon stop >/dev/null 2>&1
    done
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    local ids
    ids=$( {
        docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^(dwsoak-|dockwarm/dwsoak-)'
        docker image ls -q --filter label=dev.dockwarm.managed=true | sort -u | xargs -r docker image inspect -f '{{.Id}} {{index .Config.Labels "dev.dockwarm.project"}}' 2>/dev/null | awk '$2 ~ /^dwsoak-/ { print $1 }'
        cat "$work"/ids-* 2>/dev/null
    } | sort -u)
    [ -n "$ids" ] && echo "$ids" | xargs -r docker image rm -f >/dev/null 2>&1
    docker image rm "$BASE" >/dev/null 2>&1
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- fixtures ----------------------------------------------------------------------------------------
if [ -z "${DOCKWARM:-}" ]; then
    say "building dockwarm (cargo build)"
    (cd "$repo" && cargo build --quiet)
    DOCKWARM="${CARGO_TARGET_DIR:-$repo/target}/debug/dockwarm"
fi
mkdir -p "$work/bin" && ln -sf "$(cd "$(dirname "$DOCKWARM")" && pwd)/$(basename "$DOCKWARM")" "$work/bin/dockwarm"
export PATH="$work/bin:$PATH"
dw_commit=$(git -C "$repo" rev-parse --short HEAD)
git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock || dw_commit="$dw_commit+uncommitted"

"$bench/base-image.sh" >/dev/null
docker tag dockwarm-bench/python:bookworm "$BASE"   # our own name: nobody else's rebuild moves it
mkdir -p "$bench/index/wheels"
if [ "$(ls "$bench/index/wheels" | wc -l)" -lt 68 ]; then
    while read -r key path; do
        [ "$key" = worktree ] && [ -d "$path/bench/index/wheels" ] && [ "$path" != "$repo" ] || continue
        cp -n "$path/bench/index/wheels/"* "$bench/index/wheels/" 2>/dev/null || true
    done < <(git -C "$repo" worktree list --porcelain)
fi
"$bench/index/fetch.sh" | tail -1
if curl -fsS -m 2 "http://127.0.0.1:$PORT/simple/" >/dev/null 2>&1; then say "something listens on $PORT; set PORT"; exit 1; fi
python3 "$bench/index/serve.py" --port "$PORT" >"$work/serve.out" 2>&1 &
server=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/simple/" >/dev/null 2>&1 && break; sleep 0.2; done

template="$work/template"
mkdir -p "$template"
(cd "$bench/app" && tar --exclude=./variants -cf - .) | tar -C "$template" -xf -
sed -i "s#127\.0\.0\.1:8765#127.0.0.1:$PORT#g" "$template/uv.lock" "$template/Dockerfile" "$template/compose.yaml"
sed -i "s#^ARG BASE_IMAGE=.*#ARG BASE_IMAGE=$BASE#" "$template/Dockerfile"

git_q() { git -c user.name=dwsoak -c user.email=dwsoak@localhost -c init.defaultBranch=main -c advice.detachedHead=false "$@"; }

# --- one contender -----------------------------------------------------------------------------------
measure() {  # CONTENDER P STEP EVENT
    local out; out=$(python3 "$repo/scripts/bench-disk-measure.py" --prefix "$2" --ids "$work/ids-$1" --exclude "$BASE")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$3" "$4" "${out% *}" "${out#* }" "$(since "$t_start")" >>"$results"
    say "  $1 step $3 ($4): $(awk -v b="${out% *}" 'BEGIN { printf "%.2f GB", b / 1e9 }') in ${out#* } image(s)"
}
note_id() {  # CONTENDER IMAGE
    docker image inspect -f '{{.Id}}' "$2" >>"$work/ids-$1" 2>/dev/null || true
}
fp_of() { docker image inspect -f '{{index .Config.Labels "dev.dockwarm.fingerprint"}}' "$1" 2>/dev/null || true; }
dw_wait_image() {  # NAME NOT_FP: until NAME exists with another fingerprint
    local t0; t0=$(now)
    while :; do
        local f; f=$(fp_of "$1")
        if [ -n "$f" ] && [ "$f" != "$2" ]; then return 0; fi
        if awk -v a="$(since "$t0")" -v b="$WAIT_LIMIT" 'BEGIN { exit !(a > b) }'; then
            say "timed out waiting for $1"; tail -20 "$DOCKWARM_STATE_DIR/logs/daemon.log"; return 1
        fi
        sleep 0.2
    done
}
dw_settle() {  # until the daemon is idle and its upkeep ran after T0
    local t0=$1 t=$(now)
    while :; do
        local st idle=no m=0
        st=$("$DOCKWARM" daemon status --json 2>/dev/null || true)
        echo "$st" | python3 -c 'import json,sys; d=json.load(sys.stdin).get("daemon") or {}; sys.exit(0 if not d.get("running") and not d.get("queued") else 1)' 2>/dev/null && idle=yes
        m=$(stat -c %Y "$DOCKWARM_STATE_DIR/disk/usage.json" 2>/dev/null || echo 0)
        if [ "$idle" = yes ] && awk -v m="$m" -v t="$t0" 'BEGIN { exit !(m >= int(t)) }'; then return 0; fi
        if awk -v a="$(since "$t")" 'BEGIN { exit !(a > 120) }'; then say "upkeep did not run within 120 s"; return 0; fi
        sleep 0.5
    done
}

run_contender() {  # seed|dockwarm
    local C=$1 P="dwsoak-$1" base="$work/$1" i k j step=0
    local M="$base/$P"
    : >"$work/ids-$C"
    export DOCKWARM_STATE_DIR="$work/state-$C"
    mkdir -p "$base"
    cp -a "$template" "$M"
    echo "# dwsoak $C" >>"$M/uv.lock"
    [ "$C" = dockwarm ] && printf '[prune]\nbudget = "%s"\n' "$BUDGET" >"$M/dockwarm.toml"
    (cd "$M" && git_q init -q && git_q add -A && git_q commit -qm "bench app")
    say "$C: main checkout"
    local t0; t0=$(now)
    if [ "$C" = seed ]; then
        (cd "$M" && DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 docker-compose build) >"$work/$C-main.log" 2>&1
        note_id "$C" "${P}_api"
    else
        (cd "$M" && dockwarm init) >"$work/$C-main.log" 2>&1
        dw_wait_image "$P-api" ""
        dw_settle "$t0"
    fi
    measure "$C" "$P" "$step" "main set up"
    for i in $(seq 1 "$WS"); do
        local W="$base/$P-w$i" name="$P-w$i"
        git_q -C "$M" worktree add -q -b "w$i" "$W"
        step=$((step + 1)); t0=$(now)
        if [ "$C" = seed ]; then
            (cd "$W" && DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 docker-compose build) >"$work/$C-w$i.log" 2>&1
            note_id "$C" "${name}_api"
        else
            (cd "$W" && dockwarm init) >"$work/$C-w$i.log" 2>&1
            dw_wait_image "$name-api" ""
            dw_settle "$t0"
        fi
        measure "$C" "$P" "$step" "w$i created"
        for k in $(seq 1 "$CHANGES"); do
            step=$((step + 1)); t0=$(now)
            local old=""; [ "$C" = dockwarm ] && old=$(fp_of "$name-api")
            echo "# dwsoak $C change $i.$k" >>"$W/uv.lock"
            (cd "$W" && git_q commit -qam "lock $i.$k")
            if [ "$C" = seed ]; then
                (cd "$W" && DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1 docker-compose build) >>"$work/$C-w$i.log" 2>&1
                note_id "$C" "${name}_api"
            else
                dw_wait_image "$name-api" "$old"
                dw_settle "$t0"
            fi
            measure "$C" "$P" "$step" "w$i lock change $k"
        done
        j=$((i - 2))
        if [ "$j" -ge 1 ]; then
            local R="$base/$P-w$j" how="git worktree remove"
            step=$((step + 1)); t0=$(now)
            if [ $((j % 2)) = 0 ]; then
                how="archive + git worktree remove"
                [ "$C" = dockwarm ] && (cd "$R" && dockwarm archive) >>"$work/$C-w$j.log" 2>&1
            fi
            git_q -C "$M" worktree remove --force "$R"
            if [ "$C" = dockwarm ]; then
                # gone within the daemon's rescan interval (10 s)
                local tw; tw=$(now)
                while docker image inspect "$P-w$j-api" >/dev/null 2>&1; do
                    awk -v a="$(since "$tw")" 'BEGIN { exit !(a > 120) }' && { say "w$j's tags still there after 120 s"; break; }
                    sleep 0.5
                done
                say "  w$j's tags gone $(since "$tw") s after the removal ($how)"
                printf 'w%s\t%s\t%s\n' "$j" "$(since "$tw")" "$how" >>"$work/gone.tsv"
                dw_settle "$t0"
            fi
            measure "$C" "$P" "$step" "w$j removed ($how)"
        fi
    done
    # every remaining workspace still warm (dockwarm: status says warm and its compose image exists)
    if [ "$C" = dockwarm ]; then
        (cd "$M" && dockwarm status --json) >"$work/$C-final-status.json"
        python3 - "$work/$C-final-status.json" >"$work/$C-warm.txt" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
rows = [(w["name"], i["state"]) for w in s["workspaces"] for i in w["images"]]
print(" ".join(f"{n}={st}" for n, st in rows))
print("all-warm" if rows and all(st == "warm" for _, st in rows) else "NOT-all-warm")
d = s.get("disk") or {}
print(f"dockwarm-view used={d.get('used')} budget={d.get('budget')}")
PY
        (cd "$M" && dockwarm prune --budget --dry-run) >"$work/$C-final-prune.txt" 2>&1 || true
        cat "$work/$C-warm.txt" "$work/$C-final-prune.txt" | sed 's/^/  /'
        cp "$DOCKWARM_STATE_DIR/logs/daemon.log" "$work/$C-daemon.log" 2>/dev/null || true
        DOCKWARM_STATE_DIR="$work/state-$C" dockwarm daemon stop >/dev/null 2>&1 || true
    fi
}

say "work $work; $WS workspaces x $CHANGES change(s); budget $BUDGET; dockwarm $dw_commit; contenders: $CONTENDERS"
if [ "${PARALLEL:-0}" = 1 ]; then
    pids=()
    for c in $CONTENDERS; do ( run_contender "$c" ) >"$work/run-$c.out" 2>&1 & pids+=($!); done
    rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
    cat "$work"/run-*.out
    [ "$rc" = 0 ] || { say "a contender failed"; exit 1; }
else
    for c in $CONTENDERS; do run_contender "$c"; done
fi

# --- report ------------------------------------------------------------------------------------------
mkdir -p "$OUT"
cp "$results" "$OUT/bench-disk.tsv"
warm=$(tail -n +2 "$work/dockwarm-warm.txt" 2>/dev/null | head -1 || true)
facts="$work/facts.json"
python3 - "$facts" <<PY
import json, sys
json.dump({"date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "commit": "$dw_commit", "ws": $WS, "changes": $CHANGES,
           "budget": "$BUDGET", "warm": """$(cat "$work/dockwarm-warm.txt" 2>/dev/null | head -1)""",
           "all_warm": """$(sed -n 2p "$work/dockwarm-warm.txt" 2>/dev/null)""",
           "prune": """$(cat "$work/dockwarm-final-prune.txt" 2>/dev/null)""",
           "minutes": round(($(now) - $t_start) / 60, 1), "load": "$(cut -d' ' -f1-3 /proc/loadavg)"},
          open(sys.argv[1], "w"))
PY
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    say "installing matplotlib into $VENV"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q matplotlib
fi
"$VENV/bin/python" "$repo/scripts/bench-disk-report.py" "$results" "$facts" "$OUT"
say "done in $(since "$t_start") s: $OUT/benchmarks.md, $OUT/bench-disk.png"
