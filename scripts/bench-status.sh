#!/usr/bin/env bash
# How long `dockwarm status` takes while the engine exports a build (issue 15 point 3), beside
# `docker system df` (the call status used to make every time, which Engine 20.10 holds while
# layers are exported) timed over the same moments.
#
# A busybox-based project whose dependency stage writes SIZE_MB of random bytes (a layer the
# engine must diff and register: tens of seconds on fuse-overlayfs), prebuilt in the background;
# while that build runs, `dockwarm status` and `docker system df` are each run every INTERVAL
# seconds, timed as whole processes. Prints the median and the maximum of each, the number of
# samples, and how many were taken while the build was exporting (its log said "exporting").
#
#   scripts/bench-status.sh              # SIZE_MB=1500, INTERVAL=0.5
#   OUT=docs/benchmarks.md scripts/bench-status.sh   # also write the section between its markers
set -euo pipefail
export LC_ALL=C
repo=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MB=${SIZE_MB:-1500}
INTERVAL=${INTERVAL:-0.5}
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
DOCKWARM="$repo/target/release/dockwarm"
work=$(mktemp -d)
export DOCKWARM_STATE_DIR="$work/state" DOCKWARM_DAEMON=0
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b GIT_CONFIG_NOSYSTEM=1
P="dwbstatus$$"
BASE="dockwarm-bench/busybox-status:$$"
cleanup() {
    docker images -q --filter "label=dev.dockwarm.project=$P" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    docker images --format '{{.Repository}}:{{.Tag}}' | grep -E "^($P|dockwarm/$P)" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    docker rmi -f "$BASE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# A base image of our own (no registry here): busybox-static in an empty rootfs.
root="$work/rootfs"; mkdir -p "$root/bin" "$root/tmp"
cp "$(command -v busybox)" "$root/bin/busybox"
for a in sh head dd cat; do ln -s busybox "$root/bin/$a"; done
tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' - "$BASE" >/dev/null

mkdir -p "$work/$P" && cd "$work/$P"
printf 'FROM %s\nCOPY deps.lock ./\nRUN dd if=/dev/urandom of=/big bs=1048576 count=%s 2>/dev/null && cat deps.lock\nCOPY . .\n' "$BASE" "$SIZE_MB" > Dockerfile
printf 'services:\n  app:\n    build: .\n' > compose.yaml
echo "nonce $$ $(date +%s%N)" > deps.lock
git init -q -b main && git add -A && git commit -qm base

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
"$DOCKWARM" prebuild --full --quiet >"$work/build.log" 2>&1 &
build=$!
status_ms=() df_ms=() exporting=0 samples=0
while kill -0 "$build" 2>/dev/null; do
    s=$(ms "$DOCKWARM" status)
    d=$(ms docker system df)
    status_ms+=("$s"); df_ms+=("$d"); samples=$((samples + 1))
    log=$(ls -t "$DOCKWARM_STATE_DIR"/logs/*.log 2>/dev/null | head -1 || true)
    if [ -n "$log" ] && tail -3 "$log" | grep -qi "export\|writing image\|naming to"; then exporting=$((exporting + 1)); fi
    sleep "$INTERVAL"
done
wait "$build" || { echo "the prebuild failed:"; tail -20 "$work/build.log"; exit 1; }
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "median %d ms, max %d ms", a[int((NR+1)/2)], a[NR]}'; }
line_status="dockwarm status: $(stats "${status_ms[@]}")"
line_df="docker system df: $(stats "${df_ms[@]}")"
echo "$samples samples while a ${SIZE_MB} MB layer was built ($exporting of them while it was exported)"
echo "$line_status"
echo "$line_df"

if [ -n "${OUT:-}" ]; then
    case $OUT in /*) ;; *) OUT="$repo/$OUT" ;; esac
    section=$(cat <<EOF
<!-- bench-status:start -->
## \`status\` while the engine exports a layer (issue 15 point 3)

Made by \`scripts/bench-status.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), dockwarm commit \`$(git -C "$repo" rev-parse --short HEAD)\`, engine $(docker version --format '{{.Server.Version}}') ($(docker info --format '{{.Driver}}')). A dependency stage writing ${SIZE_MB} MB of random bytes was prebuilt; meanwhile \`dockwarm status\` and \`docker system df\` (what status called every time before) each ran every ${INTERVAL} s, timed as whole processes: $samples samples, $exporting of them while the layer was exported.

| command | median | max |
| --- | ---: | ---: |
| \`dockwarm status\` | $(printf '%s\n' "${status_ms[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms | $(printf '%s\n' "${status_ms[@]}" | sort -n | tail -1) ms |
| \`docker system df\` | $(printf '%s\n' "${df_ms[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') ms | $(printf '%s\n' "${df_ms[@]}" | sort -n | tail -1) ms |
<!-- bench-status:end -->
EOF
)
    python3 - "$OUT" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pat = re.compile(r"<!-- bench-status:start -->.*?<!-- bench-status:end -->", re.S)
text = pat.sub(lambda _: section, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
    echo "wrote the section into $OUT"
fi
