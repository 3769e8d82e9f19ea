#!/usr/bin/env bash
# Runs dockwarm on the example project (examples/demo) the way a user's day goes: a main
# checkout set up with `dockwarm init`, a prebuild, a second workspace made with
# `git worktree add` that starts `docker compose up` without building, then archive.
# Works on a machine without a registry: the base image is made locally with `docker import`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/ensure-engine.sh"

dockwarm=$(command -v dockwarm || echo "$HOME/.cargo/bin/dockwarm")
[ -x "$dockwarm" ] || { echo "demo: dockwarm is not installed; run ./install.sh first" >&2; exit 1; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

work=$(mktemp -d /tmp/dockwarm-demo.XXXXXX)
export DOCKWARM_STATE_DIR="$work/state" GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com \
  GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
made_base=0
# Everything the demo made goes, and nothing else: the daemon first (so no build starts
# meanwhile), then the second workspace's containers, network and compose-built image
# (`--rmi local`: images compose built for services without `image:`), the workspaces'
# registrations and tags, dockwarm's images and volume of the `demo` project, and the base
# image when this run imported it.
cleanup() {
  "$dockwarm" daemon stop >/dev/null 2>&1 || true
  (cd "$work/second" && docker compose down --rmi local >/dev/null 2>&1) || true
  (cd "$work/demo" && "$dockwarm" archive >/dev/null 2>&1) || true
  (cd "$work/second" && "$dockwarm" archive >/dev/null 2>&1) || true
  docker image ls --filter label=dev.dockwarm.project=demo -q | xargs -r docker image rm -f >/dev/null 2>&1 || true
  docker volume rm demo_deps >/dev/null 2>&1 || true
  if [ "$made_base" = 1 ]; then docker image rm "$BASE_IMAGE" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# A local busybox base image: the example's BASE_IMAGE (no registry to pull busybox from).
export BASE_IMAGE=dockwarm-example/busybox:latest
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  root=$(mktemp -d "$work/rootfs.XXXXXX"); mkdir -p "$root/bin" "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for a in sh ls cat cp mkdir sleep echo wc; do ln -s busybox "$root/bin/$a"; done
  made_base=1
  tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
fi

cp -r "$here/examples/demo" "$work/demo"
cd "$work/demo"
git init -q -b main && git add -A && git commit -qm "demo project"

step "What dockwarm sees"
run "$dockwarm" doctor || true
run "$dockwarm" config
run "$dockwarm" fingerprint

step "Set up the main checkout (what Conductor's setup script runs)"
run "$dockwarm" init
step "Prebuild the dependency stage now, with progress (the background one may already be at it)"
run "$dockwarm" prebuild
step "Again: the fingerprint is built, so this takes milliseconds"
run "$dockwarm" prebuild

step "A second workspace: git worktree add, then its setup line"
run git worktree add -q "$work/second" -b second
cd "$work/second"
run "$dockwarm" init
printf 'waiting for the background build of the workspace image'
for _ in $(seq 1 60); do
  docker image inspect second-app >/dev/null 2>&1 && break
  printf '.'; sleep 1
done
echo
run docker compose up --no-build
run docker compose down
step "The user's own build finds every dependency step CACHED"
docker compose --progress plain build 2>&1 | grep -E '^#[0-9]+ (\[app (deps|base)|CACHED)' || true

step "Archive the second workspace (Conductor's archive step)"
run "$dockwarm" archive
step "Cleaning up: the demo removes everything it made"
