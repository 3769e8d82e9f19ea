#!/usr/bin/env bash
# The team registry benchmark (issue 13): a second machine's first warm-up from the registry
# against its cold build, in the same run.
#
#   scripts/bench-team.sh                    # bench/app (59 packages), 3 runs; writes its section
#                                            # of docs/benchmarks.md and docs/bench-team.tsv
#   APP=tiny RUNS=1 scripts/bench-team.sh    # a busybox stand-in (seconds): checks the script
#                                            # itself; writes to /tmp/dwteam-quick
#
# The "second machine" is a second dockerd on this host (engine B: its own data root, exec root,
# socket and bridge, the same storage driver), so it starts with an empty image store and an
# empty BuildKit cache; the first engine (A, the one DOCKER_HOST or the default socket names)
# plays the teammate who built first. The registry is Debian's docker-registry on a free
# loopback port with a temp storage dir.
#
#   setup   A: `dockwarm prebuild --push` in the project (fills the registry; timed, reported)
#   cold    B emptied (images but the base, whole BuildKit cache), a fresh clone, `dockwarm init`
#           with DOCKWARM_REGISTRY=off: seconds until the compose image `<clone>-<service>` is
#           tagged on B; packages fetched from the index
#   warm    B emptied again, a fresh clone, `dockwarm init` with the registry: the same clock
#   user    then, in the warm clone, the user's own `docker compose build` on B: seconds,
#           packages fetched, whether the dependency step was CACHED
# Each run does cold then warm; the result is the median over runs of each, and cold/warm.
#
# Not neutral for engine A: it builds and removes only images of its own project (dwteam-*).
# Engine B is entirely the script's and is removed at the end, with its bridge.
#
# Environment:
#   APP=bench|tiny   the project (default bench: bench/app and its local index, as bench-seed.sh)
#   RUNS=N           runs (default 3; APP=tiny: 1)
#   DOCKWARM=PATH    a dockwarm binary (default: `cargo build --release` of this checkout)
#   OUT=DIR          where bench-team.tsv goes and whose benchmarks.md gets the section
#                    (default docs/; APP=tiny: /tmp/dwteam-quick)
#   KEEP=1           keep the work directory (logs)
#   WAIT_LIMIT=S     give up on one warm-up after S seconds (default 600)
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "$0")/.." && pwd)
bench="$repo/bench"
APP="${APP:-bench}"
if [ "$APP" = tiny ]; then RUNS="${RUNS:-1}"; OUT="${OUT:-/tmp/dwteam-quick}"; else RUNS="${RUNS:-3}"; OUT="${OUT:-$repo/docs}"; fi
WAIT_LIMIT="${WAIT_LIMIT:-600}"

say() { printf 'dwteam: %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for tool in docker git python3 curl ip dockerd docker-registry; do
    command -v "$tool" >/dev/null || { say "needs $tool on PATH (docker-registry: apt-get install docker-registry)"; exit 2; }
done
docker compose version >/dev/null 2>&1 || { say "needs compose v2 (docker compose)"; exit 2; }
[ "$(id -u)" = 0 ] || { say "needs root: it starts a second dockerd and a bridge"; exit 2; }

work=$(mktemp -d /tmp/dwteam.XXXXXX)
results="$work/results.tsv"
: >"$results"
idxlog="$work/index.log"
index_pid="" registry_pid="" b_pid="" bridge="" state_dirs=()
P="dwteam-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# --- cleanup ---------------------------------------------------------------------------------------
b_docker() { DOCKER_HOST="unix://$work/b/docker.sock" docker "$@"; }
stop_daemons() {
    local s
    for s in "${state_dirs[@]+"${state_dirs[@]}"}"; do
        [ -d "$s" ] && DOCKER_HOST="unix://$work/b/docker.sock" DOCKWARM_STATE_DIR="$s" "$DOCKWARM" daemon stop >/dev/null 2>&1 || true
    done
    state_dirs=()
}
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    say "cleaning up"
    [ -n "${DOCKWARM:-}" ] && stop_daemons
    if [ -n "$b_pid" ]; then
        kill "$b_pid" 2>/dev/null
        for _ in $(seq 300); do kill -0 "$b_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$b_pid" 2>/dev/null
        say "engine B stopped"
    fi
    [ -n "$bridge" ] && ip link del "$bridge" 2>/dev/null
    grep " $work/b/" /proc/self/mounts | awk '{ print $2 }' | sort -r | xargs -r -n1 umount -l 2>/dev/null
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
    [ -n "$index_pid" ] && kill "$index_pid" 2>/dev/null
    docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E "^(dockwarm/)?$P" | xargs -r docker image rm -f >/dev/null 2>&1
    docker image ls -q --filter "label=dev.dockwarm.project=$P" | xargs -r docker image rm -f >/dev/null 2>&1
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $work"; else rm -rf "$work"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- dockwarm --------------------------------------------------------------------------------------
if [ -z "${DOCKWARM:-}" ]; then
    say "building dockwarm (cargo build --release)"
    (cd "$repo" && cargo build --release --quiet)
    DOCKWARM="${CARGO_TARGET_DIR:-$repo/target}/release/dockwarm"
fi
[ -x "$DOCKWARM" ] || { say "no dockwarm binary at $DOCKWARM"; exit 2; }
DOCKWARM=$(cd "$(dirname "$DOCKWARM")" && pwd)/$(basename "$DOCKWARM")
mkdir -p "$work/bin" && ln -sf "$DOCKWARM" "$work/bin/dockwarm"
export PATH="$work/bin:$PATH"
dw_commit=$(git -C "$repo" rev-parse --short HEAD)
git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock || dw_commit="$dw_commit+uncommitted"
say "work directory $work; project $P; $RUNS run(s) of $APP; dockwarm $DOCKWARM at $dw_commit"

# --- the project and its package index ---------------------------------------------------------------
template="$work/template"
mkdir -p "$template"
if [ "$APP" = bench ]; then
    service=api base=dockwarm-bench/python:bookworm index_port=8765
    "$bench/base-image.sh"
    "$bench/index/fetch.sh" | tail -1
    wheels_dir="$bench/index/wheels"
    (cd "$bench/app" && tar --exclude=./variants -cf - .) | tar -C "$template" -xf -
    run_step='uv sync'
else
    service=app base=dockwarm-test/busybox:latest index_port=$(free_port)
    if ! docker image inspect "$base" >/dev/null 2>&1; then
        bb=$(command -v busybox || true); [ -n "$bb" ] || { say "APP=tiny needs busybox-static"; exit 2; }
        mkdir -p "$work/rootfs/bin" "$work/rootfs/tmp" && cp "$bb" "$work/rootfs/bin/busybox"
        for a in sh cat ls sleep echo wget; do ln -s busybox "$work/rootfs/bin/$a"; done
        tar -C "$work/rootfs" -c . | docker import --change 'LABEL dev.dockwarm.test=true' --change 'ENV PATH=/bin' - "$base" >/dev/null
    fi
    wheels_dir="$work/wheels"; mkdir -p "$wheels_dir"
    python3 - "$wheels_dir" <<'PY'
import sys, zipfile
for i in range(5):
    with zipfile.ZipFile(f"{sys.argv[1]}/tinypkg{i}-1.0-py3-none-any.whl", "w") as z:
        z.writestr(f"tinypkg{i}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: tinypkg{i}\nVersion: 1.0\n")
PY
    {
        echo "FROM $base AS deps"
        echo "WORKDIR /app"
        echo "COPY deps.lock ./"
        printf 'RUN for i in 0 1 2 3 4; do busybox wget -q -O /dev/null http://127.0.0.1:%s/files/tinypkg$i-1.0-py3-none-any.whl || exit 1; done && sleep 3 && cp deps.lock /app/installed\n' "$index_port"
        echo "FROM deps AS runtime"
        echo "COPY . ."
        echo 'CMD ["cat", "/app/installed"]'
    } >"$template/Dockerfile"
    printf 'services:\n  app:\n    build:\n      context: .\n      target: runtime\n      network: host\n' >"$template/compose.yaml"
    echo "tinypkg0==1.0" >"$template/deps.lock"
    run_step='busybox wget'
fi
if curl -fsS -m 2 "http://127.0.0.1:$index_port/simple/" >/dev/null 2>&1; then
    say "something already listens on 127.0.0.1:$index_port; stop it first"; exit 1
fi
python3 "$bench/index/serve.py" --port "$index_port" --wheels "$wheels_dir" --log "$idxlog" >"$work/serve.out" 2>&1 &
index_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$index_port/simple/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$index_port/simple/" >/dev/null || { cat "$work/serve.out"; say "index did not start"; exit 1; }
wheels() { awk -F'\t' '$2 == "wheel" && $3 == "GET" && $5 == 200' "$idxlog" | wc -l; }

# --- the registry ------------------------------------------------------------------------------------
reg_port=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$reg_port
YAML
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$reg_port/v2/" >/dev/null || { cat "$work/registry/log"; say "registry did not start"; exit 1; }
registry_url="127.0.0.1:$reg_port/team"
say "index on 127.0.0.1:$index_port, registry $registry_url"
printf '[project]\nname = "%s"\n\n[registry]\nurl = "%s"\n' "$P" "$registry_url" >"$template/dockwarm.toml"

git_q() { git -c user.name=dwteam -c user.email=dwteam@localhost -c init.defaultBranch=main -c advice.detachedHead=false "$@"; }
origin="$work/origin/$P"
mkdir -p "$origin" && cp -a "$template/." "$origin/"
(cd "$origin" && git_q init -q && git_q add -A && git_q commit -qm "team bench app")

# --- engine B ---------------------------------------------------------------------------------------
mkdir -p "$work/b/data" "$work/b/exec"
echo '{}' >"$work/b/daemon.json"
bridge="dwb$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
used=$(ip -4 addr)
for n in $(seq 60 254); do case "$used" in *"10.213.$n."*) ;; *) subnet=$n; break ;; esac; done
ip link add "$bridge" type bridge
ip addr add "10.213.$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
dockerd --config-file "$work/b/daemon.json" --data-root "$work/b/data" --exec-root "$work/b/exec" \
    --pidfile "$work/b/dockerd.pid" -H "unix://$work/b/docker.sock" --iptables=false --ip-masq=false \
    --storage-driver "$(docker info --format '{{.Driver}}')" --bridge="$bridge" >"$work/b/dockerd.log" 2>&1 &
b_pid=$!
for _ in $(seq 300); do b_docker info >/dev/null 2>&1 && break; sleep 0.2; done
b_docker info >/dev/null 2>&1 || { tail -20 "$work/b/dockerd.log"; say "engine B did not start"; exit 1; }
docker save "$base" | b_docker load >/dev/null
say "engine B up (pid $b_pid, bridge $bridge), base image $base loaded"

record() {  # run phase seconds wheels note
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"
    say "  run $1 $2: ${3}s, $4 packages fetched${5:+ ($5)}"
}

# --- A fills the registry -----------------------------------------------------------------------------
n=$(wheels); t=$(now)
(cd "$origin" && DOCKWARM_STATE_DIR="$work/state-a" "$DOCKWARM" prebuild --push >"$work/a-prebuild.log" 2>&1) \
    || { tail -20 "$work/a-prebuild.log"; say "engine A's prebuild --push failed"; exit 1; }
record 0 "A: prebuild --push" "$(since "$t")" "$(( $(wheels) - n ))" "$(grep -o 'pushed fingerprint.*' "$work/a-prebuild.log" | head -1)"

# --- runs on B ---------------------------------------------------------------------------------------
reset_b() {
    stop_daemons
    b_docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}' | awk -v b="$base" '$1 != b { print $2 }' | sort -u \
        | xargs -r env DOCKER_HOST="unix://$work/b/docker.sock" docker image rm -f >/dev/null 2>&1 || true
    b_docker builder prune -af >/dev/null
}
# Runs in a $(...) subshell: the caller adds the state dir to state_dirs, so its daemon is
# stopped (a daemon left watching would rebuild what reset_b removed, mid-measurement).
# Prints "S D": seconds until the compose image NAME-$service exists on B (S), and until the
# dependency image did (D; "-" when it came after the compose image, as in a cold build).
warm_up() {  # NAME REGISTRY(on|off)
    local name=$1 dir="$work/$1" state="$work/state-$1" t
    git_q clone -q "$origin" "$dir"
    t=$(now)
    (
        cd "$dir"
        export DOCKER_HOST="unix://$work/b/docker.sock" DOCKWARM_STATE_DIR="$state"
        [ "$2" = on ] || export DOCKWARM_REGISTRY=off
        "$DOCKWARM" init >"$work/$name-init.log" 2>&1
    ) || { cat "$work/$name-init.log"; return 1; }
    local i=0 deps=-
    until b_docker image inspect "$name-$service" >/dev/null 2>&1; do
        if [ "$deps" = - ] && [ -n "$(b_docker image ls -q "dockwarm/$P-$service-deps")" ]; then deps=$(since "$t"); fi
        sleep 0.1; i=$((i + 1))
        if [ $((i % 50)) = 0 ] && awk -v a="$(since "$t")" -v b="$WAIT_LIMIT" 'BEGIN { exit !(a > b) }'; then
            echo timeout; tail -20 "$state/logs/daemon.log" >&2 || true; return 1
        fi
    done
    echo "$(since "$t") $deps"
}
# The workspace image comes first and the dependency image right after it (src/build/mod.rs):
# wait for the latter too, so no build of this phase is left running into the next one.
settle() {  # STATE
    local i=0
    until [ -n "$(b_docker image ls -q "dockwarm/$P-$service-deps")" ]; do
        sleep 0.2; i=$((i + 1))
        [ "$i" -lt $((WAIT_LIMIT * 5)) ] || { say "no dependency image on B"; return 1; }
    done
    DOCKER_HOST="unix://$work/b/docker.sock" DOCKWARM_STATE_DIR="$1" "$DOCKWARM" daemon stop >/dev/null 2>&1 || true
}
for r in $(seq 1 "$RUNS"); do
    reset_b
    say "run $r cold: B empty, no registry"
    state_dirs+=("$work/state-cold-r$r")
    n=$(wheels); out=$(warm_up "cold-r$r" off) || { say "cold warm-up failed: $out"; exit 1; }
    record "$r" cold "${out% *}" "$(( $(wheels) - n ))" ""
    settle "$work/state-cold-r$r"
    reset_b
    say "run $r warm: B empty, from the registry"
    state_dirs+=("$work/state-warm-r$r")
    n=$(wheels); out=$(warm_up "warm-r$r" on) || { say "warm-up from the registry failed: $out"; exit 1; }
    how=$(DOCKER_HOST="unix://$work/b/docker.sock" DOCKWARM_STATE_DIR="$work/state-warm-r$r" "$DOCKWARM" -C "$work/warm-r$r" status --json 2>/dev/null \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["workspaces"][0]["images"][0]["last_build"]["status"])' 2>/dev/null || echo "?")
    record "$r" warm "${out% *}" "$(( $(wheels) - n ))" "dependency image $how, present after ${out#* } s"
    settle "$work/state-warm-r$r"
    stop_daemons
    say "run $r user: docker compose build in the warm clone on B"
    n=$(wheels); t=$(now)
    (cd "$work/warm-r$r" && DOCKER_HOST="unix://$work/b/docker.sock" docker compose build --progress=plain >"$work/user-r$r.log" 2>&1) \
        || { tail -20 "$work/user-r$r.log"; say "the user's build failed"; exit 1; }
    s=$(since "$t")
    cached=$(awk -v step="$run_step" 'index($0, step) && /^#[0-9]+ \[/ { id=$1 } id != "" && $1 == id && $2 == "CACHED" { print "CACHED"; exit }' "$work/user-r$r.log")
    record "$r" user "$s" "$(( $(wheels) - n ))" "dependency step ${cached:-RAN}"
done

# --- report -------------------------------------------------------------------------------------------
mkdir -p "$OUT"
cp "$results" "$OUT/bench-team.tsv"
python3 - "$results" "$OUT/benchmarks.md" "$APP" "$RUNS" "$dw_commit" <<'PY'
import re, statistics, sys, subprocess
results, md, app, runs, commit = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(results) if l.strip()]
def col(phase, i):
    return [float(r[i]) for r in rows if r[1] == phase and r[0] != "0"]
cold, warm, user = col("cold", 2), col("warm", 2), col("user", 2)
mc, mw, mu = statistics.median(cold), statistics.median(warm), statistics.median(user)
present = [float(m.group(1)) for r in rows if r[1] == "warm" for m in [re.search(r"present after ([0-9.]+) s", r[4])] if m]
deps_line = ""
if present:
    md_ = statistics.median(present)
    deps_line = f" The dependency layers were on B after {md_:.2f} s ({mc / md_:.1f}x); the rest is the workspace image's own build."
engine = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True).stdout.strip()
driver = subprocess.run(["docker", "info", "-f", "{{.Driver}}"], capture_output=True, text=True).stdout.strip()
cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
lines = [
    "<!-- bench-team:start -->",
    "## A second machine from the team registry (issue 13)",
    "",
    "Made by `scripts/bench-team.sh` (the script writes this block; root; needs `docker-registry`, "
    "`dockerd`, `ip`). Engine A (this host's engine) runs `dockwarm prebuild --push`, filling a "
    "loopback `docker-registry`; engine B is a second `dockerd` on the same host with empty stores. "
    "Each run empties B (its images but the base, its whole BuildKit cache) and times, on a fresh "
    "clone, `dockwarm init` until the compose image `<clone>-api` is tagged on B: first with "
    "`DOCKWARM_REGISTRY=off` (B's cold build), then, B emptied again, with the registry (B's first "
    "warm-up). Then the user's own `docker compose build` in the warm clone on B: its time, packages "
    "fetched, and whether the dependency step was `CACHED`. Goal: the warm-up at least 10x faster "
    "than the cold build.",
    "",
    f"Project: {'bench/app (59 packages from the local index)' if app == 'bench' else 'APP=tiny (a busybox stand-in: 5 fetches and a 3 s install)'}; "
    f"{runs} run(s); dockwarm {commit}; Engine {engine} ({driver}), {cpus} CPUs; engine B: a second dockerd on the same host.",
    "",
    "| run | phase | seconds | packages fetched | note |",
    "| --- | --- | ---: | ---: | --- |",
]
for r in rows:
    lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |")
lines += [
    "",
    f"**Median: cold {mc:.2f} s, from the registry {mw:.2f} s: {mc / mw:.1f}x faster** "
    f"(goal: 10x); the user's `docker compose build` afterwards: {mu:.2f} s.{deps_line}",
    "<!-- bench-team:end -->",
]
block = "\n".join(lines) + "\n"
try:
    text = open(md).read()
except FileNotFoundError:
    text = ""
start, end = "<!-- bench-team:start -->", "<!-- bench-team:end -->"
if start in text and end in text:
    a = text.index(start)
    b = text.index(end) + len(end) + 1
    text = text[:a] + block + text[b:]
else:
    text += ("\n" if text else "") + "## A second machine from the team registry (issue 13)\n\n" + block
open(md, "w").write(text)
print(f"dwteam: median cold {mc:.2f}s, warm {mw:.2f}s: {mc / mw:.1f}x; user build {mu:.2f}s; written to {md}")
PY
