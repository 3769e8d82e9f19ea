#!/usr/bin/env bash
# What dockwarm's hooks add to git (goals from issue 3): `git checkout` between two branches,
# with and without the hooks, side by side in one run on the same repository:
#   - no dependency input changed between the branches: <= 5 ms added at the median
#   - the lockfile differs, so every checkout hands a prebuild off: <= 20 ms added
# The engine is pointed at a socket that does not exist, so the handed-off background jobs end
# at once instead of loading the machine (the hook itself never talks to the engine).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-40}
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
export PATH="$here/target/release:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOCKWARM_STATE_DIR="$work/state" DOCKER_HOST="unix://$work/no-engine.sock"
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b GIT_CONFIG_NOSYSTEM=1

repo="$work/repo"; mkdir -p "$repo"; cd "$repo"
printf 'FROM scratch\nCOPY uv.lock pyproject.toml ./\nRUN install\nCOPY . .\n' > Dockerfile
printf 'services:\n  app:\n    build: .\n' > compose.yaml
# An override file, as compose merges it (issue 10): the hook must read it without compose.
printf 'services:\n  app:\n    build:\n      args:\n        MODE: dev\n' > compose.override.yaml
printf '[project]\nname = "x"\n' > pyproject.toml
head -c 200000 /dev/urandom | base64 > uv.lock
for i in $(seq 1 200); do echo "file $i" > "src_$i.py"; done
git init -q -b main && git add -A && git commit -qm base
git checkout -q -b same && echo "changed" > src_1.py && git commit -qam "source only"
git checkout -q -b deps main && echo "extra==1.0" >> uv.lock && git commit -qam "deps"
git checkout -q main

# Median wall time in ms of `git checkout` alternating between main and $1.
measure() {
  local other=$1 times=() s e
  for _ in $(seq 1 "$runs"); do
    for b in "$other" main; do
      s=$(date +%s%N); git checkout -q "$b" 2>/dev/null; e=$(date +%s%N)
      times+=($(( (e - s) / 1000 )))
    done
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

without_same=$(measure same); without_deps=$(measure deps)
dockwarm hooks install >/dev/null
dockwarm hook post-checkout 0000000000000000000000000000000000000000 HEAD 1 2>/dev/null || true
with_same=$(measure same); with_deps=$(measure deps)
dockwarm hooks uninstall >/dev/null

printf '%-44s %10s %10s %10s  %s\n' "git checkout (median of $((runs * 2)))" "without" "with" "added" "goal"
printf '%-44s %8s ms %8s ms %8s ms  %s\n' "no dependency input changed" "$without_same" "$with_same" \
  "$(echo "$with_same - $without_same" | bc)" "<= 5 ms"
printf '%-44s %8s ms %8s ms %8s ms  %s\n' "lockfile changed: prebuild handed off" "$without_deps" "$with_deps" \
  "$(echo "$with_deps - $without_deps" | bc)" "<= 20 ms"
