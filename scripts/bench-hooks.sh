#!/usr/bin/env bash
# What dockwarm's hooks add to git: `git checkout` between two branches, with and without the
# hooks, side by side in one run on the same repository, in a small repository (200 source
# files) and a big one (200,000 files the .dockerignore does not exclude, as a monorepo's
# node_modules or generated tree). Goals (issues 3 and 9):
#   - no dependency input changed between the branches: <= 5 ms added at the median, and the
#     hook alone (`dockwarm hook post-checkout`, whole process) <= 5 ms at the median
#   - the lockfile differs, so every checkout hands a prebuild off: <= 20 ms added
# The engine is pointed at a socket that does not exist, so the handed-off background jobs end
# at once instead of loading the machine (the hook itself never talks to the engine).
# RUNS (default 40) checkouts each way; BIG_FILES (default 200000) files in the big repository.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-40}
big_files=${BIG_FILES:-200000}
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
export PATH="$here/target/release:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOCKER_HOST="unix://$work/no-engine.sock"
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b GIT_CONFIG_NOSYSTEM=1

# A repository with branches `same` (a source file changed) and `deps` (the lockfile changed).
make_repo() {
  local repo=$1 files=$2
  mkdir -p "$repo"; cd "$repo"
  printf 'FROM scratch\nCOPY uv.lock pyproject.toml ./\nRUN install\nCOPY . .\n' > Dockerfile
  printf 'services:\n  app:\n    build: .\n' > compose.yaml
  # An override file, as compose merges it (issue 10): the hook reads it without compose.
  printf 'services:\n  app:\n    build:\n      args:\n        MODE: dev\n' > compose.override.yaml
  printf '[project]\nname = "x"\n' > pyproject.toml
  head -c 200000 /dev/urandom | base64 > uv.lock
  python3 - "$files" <<'PY'
import os, sys
n = int(sys.argv[1])
per = 1000
for i in range(n):
    d = "src" if n <= per else f"node_modules/pkg{i // per}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}.js", "w") as f:
        f.write(f"module.exports = {i};\n")
PY
  git init -q -b main && git add -A && git commit -qm base
  local one
  # sed, not grep -m1: an early exit would kill git ls-files with SIGPIPE under pipefail.
  one=$(git ls-files 'src/*' 'node_modules/*' | sed -n 1p)
  git checkout -q -b same && echo "changed" >> "$one" && git commit -qam "source only"
  git checkout -q -b deps main && echo "extra==1.0" >> uv.lock && git commit -qam "deps"
  git checkout -q main
}

# Median wall times in ms of `git checkout` alternating between main and $1, without and with
# the hooks, interleaved: each round checks out both ways back to back (without: git pointed at
# an empty hooks directory), so a drift of the machine (page cache, another process) weighs on
# both columns alike. Prints "WITHOUT WITH".
measure() {
  local other=$1 without=() with=() s e
  for _ in $(seq 1 "$runs"); do
    for b in "$other" main; do
      s=$(date +%s%N); git -c core.hooksPath="$work/no-hooks" checkout -q "$b" 2>/dev/null; e=$(date +%s%N)
      without+=($(( (e - s) / 1000 )))
      git -c core.hooksPath="$work/no-hooks" checkout -q "$([ "$b" = main ] && echo "$other" || echo main)" 2>/dev/null
      s=$(date +%s%N); git checkout -q "$b" 2>/dev/null; e=$(date +%s%N)
      with+=($(( (e - s) / 1000 )))
    done
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'; }
  echo "$(median "${without[@]}") $(median "${with[@]}")"
}

# Median wall time in ms of the hook process alone, nothing changed.
measure_hook() {
  local times=() s e head
  head=$(git rev-parse HEAD)
  for _ in $(seq 1 $((runs * 2))); do
    s=$(date +%s%N)
    DOCKWARM_HOOK_RUNNING=1 dockwarm hook post-checkout "$head" "$head" 1 2>/dev/null
    e=$(date +%s%N)
    times+=($(( (e - s) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

row() { printf '%-52s %8s ms %8s ms %8s ms  %s\n' "$1" "$2" "$3" "$(echo "$3 - $2" | bc)" "$4"; }

printf '%-52s %11s %11s %11s  %s\n' "git checkout (median of $((runs * 2)))" "without" "with" "added" "goal"
for size in small big; do
  files=200; [ "$size" = big ] && files=$big_files
  export DOCKWARM_STATE_DIR="$work/state-$size"
  repo="$work/repo-$size"
  make_repo "$repo" "$files"
  mkdir -p "$work/no-hooks"
  dockwarm hooks install >/dev/null
  dockwarm hook post-checkout 0000000000000000000000000000000000000000 HEAD 1 2>/dev/null || true
  read -r without_same with_same < <(measure same)
  read -r without_deps with_deps < <(measure deps)
  hook_alone=$(measure_hook)
  dockwarm hooks uninstall >/dev/null
  dockwarm daemon stop >/dev/null 2>&1 || true
  label="$size repository ($files files)"
  row "$label: no dependency input changed" "$without_same" "$with_same" "<= 5 ms"
  row "$label: lockfile changed, prebuild handed off" "$without_deps" "$with_deps" "<= 20 ms"
  printf '%-52s %11s %8s ms %11s  %s\n' "$label: the hook alone, nothing changed" "" "$hook_alone" "" "<= 5 ms"
  cd "$work"; rm -rf "$repo"
done
