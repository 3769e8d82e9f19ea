#!/usr/bin/env bash
# Makes sure the things dockwarm's tests run against are here: a Docker engine that answers,
# compose v2 and buildx CLI plugins (from Debian trixie's packages), docker-compose v1,
# busybox-static (the rootfs of the tests' local base images) and, for the team registry
# tests, docker-registry and htpasswd. Idempotent; prints what it does.
set -euo pipefail

log() { printf 'ensure-engine: %s\n' "$*" >&2; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. An engine that answers.
if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null 2>&1; then
    log "no dockerd: installing docker.io"
    apt_install docker.io
  fi
  log "starting dockerd in the background (log: /tmp/dockerd.log)"
  (nohup dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not answer within 60 s; see /tmp/dockerd.log"; exit 1; }
fi

# 2. busybox-static and docker-compose v1.
dpkg -s busybox-static >/dev/null 2>&1 || {
  log "installing busybox-static"; apt_install busybox-static; }
command -v docker-compose >/dev/null 2>&1 || { log "installing docker-compose (v1)"; apt_install docker-compose; }

# 2b. The team registry tests: a real registry (Debian's docker-registry, no image pull needed),
#     htpasswd for its password-protected instance, and `ip` for the second engine's bridge.
command -v docker-registry >/dev/null 2>&1 || { log "installing docker-registry"; apt_install docker-registry; }
command -v htpasswd >/dev/null 2>&1 || { log "installing apache2-utils (htpasswd)"; apt_install apache2-utils; }
command -v ip >/dev/null 2>&1 || { log "installing iproute2"; apt_install iproute2; }
command -v openssl >/dev/null 2>&1 || { log "installing openssl (the TLS registry test's CA)"; apt_install openssl; }

# 3. compose v2 and buildx as CLI plugins, from Debian trixie (not in bookworm).
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
  log "installing docker compose v2 and buildx from Debian trixie into $plugins"
  work=$(mktemp -d)
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$work/sources.list"
  opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::Archives=$work/archives")
  apt-get "${opts[@]}" update -qq >/dev/null
  (cd "$work" && apt-get "${opts[@]}" download docker-compose docker-buildx >/dev/null)
  mkdir -p "$plugins"
  for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
  cp "$work"/root/usr/libexec/docker/cli-plugins/* "$plugins/"
  rm -rf "$work"
fi
docker compose version >/dev/null && docker buildx version >/dev/null
log "engine $(docker version -f '{{.Server.Version}}' 2>/dev/null), $(docker compose version --short 2>/dev/null | sed 's/^/compose /'), $(docker buildx version 2>/dev/null | awk '{print "buildx " $2}')"
