#!/usr/bin/env bash
# Installs dockwarm on PATH (cargo's bin directory, ~/.cargo/bin by default).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo is needed; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi
cargo install --quiet --locked --path . --root "${DOCKWARM_INSTALL_ROOT:-$HOME/.cargo}"
bin="${DOCKWARM_INSTALL_ROOT:-$HOME/.cargo}/bin/dockwarm"
echo "installed $("$bin" --version) at $bin"
case ":$PATH:" in
  *":$(dirname "$bin"):"*) ;;
  *) echo "add $(dirname "$bin") to PATH to run dockwarm" ;;
esac
