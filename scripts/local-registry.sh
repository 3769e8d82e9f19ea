#!/usr/bin/env bash
# A registry for one user on this machine, on loopback (plain HTTP is fine there: the engine
# and dockwarm both allow it for 127.0.0.0/8). Idempotent: does nothing when it answers.
#
#   scripts/local-registry.sh            # 127.0.0.1:5000, storage in ~/.local/share/dockwarm-registry
#   PORT=5001 scripts/local-registry.sh
#
# Uses the `registry:2` image when it can be pulled, else Debian's `docker-registry` package
# (installed with apt-get when missing). Prints the config line that uses it.
set -euo pipefail
port="${PORT:-5000}"
data="${DATA:-${XDG_DATA_HOME:-$HOME/.local/share}/dockwarm-registry}"
answers() { curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; }
say() { printf 'local-registry: %s\n' "$*" >&2; }

if answers; then
  say "a registry already answers on 127.0.0.1:$port"
elif docker image inspect registry:2 >/dev/null 2>&1 || docker pull -q registry:2 >/dev/null 2>&1; then
  docker run -d --name "dockwarm-registry-$port" --restart unless-stopped \
    -p "127.0.0.1:$port:5000" -v dockwarm-registry:/var/lib/registry registry:2 >/dev/null
  say "started registry:2 as container dockwarm-registry-$port"
else
  if ! command -v docker-registry >/dev/null 2>&1; then
    say "registry:2 cannot be pulled; installing Debian's docker-registry"
    sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
    $sudo_cmd apt-get install -y -qq docker-registry >/dev/null
  fi
  mkdir -p "$data"
  cat >"$data/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $data/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  nohup docker-registry serve "$data/config.yml" >>"$data/registry.log" 2>&1 &
  say "started docker-registry (pid $!; log $data/registry.log)"
fi
for _ in $(seq 1 50); do answers && break; sleep 0.2; done
answers || { say "nothing answers on 127.0.0.1:$port"; exit 1; }
cat <<TEXT
Use it for every repository (~/.config/dockwarm/config.toml), or one (dockwarm.toml):

[registry]
url = "127.0.0.1:$port/$(id -un)"
TEXT
