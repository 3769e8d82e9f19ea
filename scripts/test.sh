#!/usr/bin/env bash
# The test command: makes sure a Docker engine answers (starting one when none does) and the
# clients users have are installed (compose v2, buildx, compose v1, busybox-static for the
# tests' local base images), then runs every test, the engine tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-engine.sh
export DOCKWARM_REQUIRE_ENGINE=1
# Benchmarks are built (so they keep compiling) but not run: they measure, they do not test.
cargo build --quiet --all-targets
cargo test --lib --bins --tests -- --test-threads 4 "$@"
# Tests that prune the engine's whole build cache run alone, after the others.
cargo test --tests -- --ignored --test-threads 1 "$@"
