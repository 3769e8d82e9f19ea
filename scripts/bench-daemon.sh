#!/usr/bin/env bash
# The daemon's cost and reaction time, on the real engine:
#   1. a repository with 50 worktrees, all registered (`dockwarm init` in each), one daemon;
#   2. once its startup work is done: its RSS and CPU over IDLE seconds (default 60) of doing
#      nothing (goals: <= 20 MB RSS, < 0.5% of one core);
#   3. TRIALS times (default 5): an atomic-rename save of a lockfile, then the time from the
#      end of the write to the build's start as the daemon recorded it (goal: debounce + 100 ms).
# Everything lives in a temp dir with its own DOCKWARM_STATE_DIR; the images it builds are
# removed at the end. Uses the busybox base image the tests make (`docker import`, no registry).
#
#   scripts/bench-daemon.sh            # release build, 60 s idle, 5 trials
#   IDLE=10 TRIALS=2 scripts/bench-daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE="${IDLE:-60}"
TRIALS="${TRIALS:-5}"
WORKSPACES="${WORKSPACES:-50}"
BASE=dockwarm-test/busybox:latest

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/dockwarm"
bin=$(cd "$(dirname "$bin")" && pwd)/dockwarm

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    # The same rootfs the tests import.
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for a in sh cat ls cp mkdir echo true sleep date; do ln -s busybox "$root/bin/$a"; done
    echo dockwarm-test > "$root/marker"
    tar -C "$root" -c . | docker import --change "LABEL dev.dockwarm.test=true" --change "ENV PATH=/bin" - "$BASE" >/dev/null
    rm -rf "$root"
fi

tmp=$(mktemp -d /tmp/dockwarm-bench-daemon.XXXXXX)
project="dwbench$(date +%s)"
export DOCKWARM_STATE_DIR="$tmp/state" NO_COLOR=1
cleanup() {
    "$bin" daemon stop >/dev/null 2>&1 || true
    ids=$(docker images -q --filter "label=dev.dockwarm.project=$project" | sort -u)
    [ -n "$ids" ] && docker rmi -f $ids >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

repo="$tmp/$project"
mkdir -p "$repo"
cat > "$repo/Dockerfile" <<EOF
FROM $BASE
WORKDIR /app
COPY deps.lock ./
RUN cp deps.lock /app/installed
COPY . .
EOF
# No compose services: each workspace's own image is not built, so the numbers are the
# daemon's, not 50 workspace-image builds'.
cat > "$repo/dockwarm.toml" <<EOF
[project]
name = "$project"

[[image]]
name = "app"
EOF
echo "base==1" > "$repo/deps.lock"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@dockwarm.dev commit -qm init
for i in $(seq 2 "$WORKSPACES"); do
    git -C "$repo" worktree add -q -b "w$i" "$tmp/w$i"
done

status() { "$bin" daemon status --json; }
wait_idle() { # $1: jobs finished at least
    for _ in $(seq 1 1200); do
        if status | jq -e --argjson n "$1" \
            '.daemon != null and (.daemon.running|length)==0 and (.daemon.queued|length)==0 and (.daemon.history|length)>=$n' >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "the daemon did not settle; its log:" >&2
    tail -20 "$DOCKWARM_STATE_DIR/logs/daemon.log" >&2
    exit 1
}

"$bin" -C "$repo" daemon start >/dev/null
(cd "$repo" && "$bin" init >/dev/null)
for i in $(seq 2 "$WORKSPACES"); do (cd "$tmp/w$i" && "$bin" init >/dev/null); done
wait_idle 1
pid=$(status | jq -r .daemon.pid)
registered=$(status | jq -r .daemon.workspaces)
watched=$(status | jq -r .daemon.watched_dirs)
sleep 2

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
s0=$(date +%s.%N)
sleep "$IDLE"
t1=$(ticks)
s1=$(date +%s.%N)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s0="$s0" -v s1="$s1" \
    'BEGIN { printf "%.3f", 100 * (b - a) / hz / (s1 - s0) }')

latencies=()
jobs=$(status | jq '.daemon.history|length')
for t in $(seq 1 "$TRIALS"); do
    printf 'trial==%s\n# %s\n' "$t" "$(date +%s%N)" > "$repo/deps.lock.tmp~"
    mv "$repo/deps.lock.tmp~" "$repo/deps.lock"
    written=$(date +%s%3N)
    jobs=$((jobs + 1))
    wait_idle "$jobs"
    started=$(status | jq '.daemon.history[-1].started_at_ms')
    latencies+=($((started - written)))
done

debounce=500
echo "dockwarm daemon benchmark ($(uname -sr), $(nproc) cores)"
echo "  workspaces registered:   $registered (watched directories: $watched)"
echo "  idle for ${IDLE}s:        RSS $((rss_kb / 1024)) MB (peak $((hwm_kb / 1024)) MB; goal <= 20 MB), CPU ${cpu}% of one core (goal < 0.5%)"
echo "  last write -> build start (ms, debounce ${debounce}): ${latencies[*]} (goal <= $((debounce + 100)))"
sorted=$(printf '%s\n' "${latencies[@]}" | sort -n)
echo "  median: $(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms, max: $(echo "$sorted" | tail -1) ms"
