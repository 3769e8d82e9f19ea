#!/usr/bin/env bash
# Benchmarks of the core (goals from issue 2):
# - the whole-process time of `dockwarm prebuild` when the fingerprint is already built (<= 50 ms)
# - fingerprint throughput over 20 lockfiles of 1 MB (>= 1 GB/s)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/ensure-engine.sh
cargo build --release --quiet
bin="$here/target/release/dockwarm"

work=$(mktemp -d)
export DOCKWARM_STATE_DIR="$work/state"
project="dwbench$$"
trap 'docker image ls -q --filter label=dev.dockwarm.project=$project | xargs -r docker rmi -f >/dev/null 2>&1; rm -rf "$work"' EXIT

base=dockwarm-test/busybox:latest
if ! docker image inspect "$base" >/dev/null 2>&1; then
  root="$work/rootfs"; mkdir -p "$root/bin"; cp "$(command -v busybox)" "$root/bin/busybox"
  for a in sh cat cp mkdir; do ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' - "$base" >/dev/null
fi

repo="$work/$project"
mkdir -p "$repo" && cd "$repo"
cat > Dockerfile <<DOCKERFILE
FROM $base
WORKDIR /app
COPY deps.lock ./
RUN --mount=type=cache,target=/cache/deps cp deps.lock /cache/deps/
COPY . .
DOCKERFILE
printf 'services:\n  app:\n    build: .\n' > compose.yaml
echo "$project" > deps.lock
git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm bench
"$bin" prebuild --quiet >/dev/null

# Median of 50 runs, whole process (exec to exit), fingerprint already built.
times=()
for _ in $(seq 1 50); do
  start=$(date +%s%N)
  "$bin" prebuild --quiet >/dev/null
  end=$(date +%s%N)
  times+=($(( (end - start) / 1000 )))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | sed -n 25p); p90=$(echo "$sorted" | sed -n 45p)
printf 'dockwarm prebuild, fingerprint already built: median %.1f ms, p90 %.1f ms over 50 runs (goal <= 50 ms)\n' \
  "$(echo "$median/1000" | bc -l)" "$(echo "$p90/1000" | bc -l)"

cd "$here"
cargo bench --quiet --bench fingerprint 2>/dev/null | grep -E 'throughput'
