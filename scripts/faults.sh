#!/usr/bin/env bash
# The fault campaign of issue #16, run from the outside as a hostile or unlucky user's machine
# would: each row sets up its own repository and state directory in a temp dir, does the
# damage, checks what dockwarm did, and prints one row of a table:
#
#   fault | expected | result | measured
#
# Rows: 10 worktrees at once, kill -9 mid-build x5, corrupted state files, an unwritable state
# dir, a read-only hooks dir, a moved binary, an unreachable engine, hostile paths and branch
# names, a second local user, a /dev/zero lockfile, non-UTF-8 bytes, a daemon started under a
# wrong DOCKER_HOST, the state's modes, and 50 workspaces with 1,000 writes in 30 s (the
# daemon's RSS under load). Needs root (for the second user, run with setpriv as `nobody`),
# the real engine, and the busybox base image the tests make (imported here when missing).
#
#   scripts/faults.sh                  # debug build, every row (about 5 minutes)
#   ROWS="dev_zero modes" scripts/faults.sh
#   DOCKWARM_BIN=/path/to/dockwarm scripts/faults.sh   # another build of dockwarm
# Exit 1 when a row fails.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -n "${DOCKWARM_BIN:-}" ]; then
    bin=$(realpath "$DOCKWARM_BIN")      # another build, e.g. the one before the fixes
else
    cargo build --quiet || exit 1
    bin="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/dockwarm"
fi
BASE=dockwarm-test/busybox:latest
NOBODY=65534

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for a in sh cat ls cp mkdir echo true sleep date; do ln -s busybox "$root/bin/$a"; done
    echo dockwarm-test > "$root/marker"
    tar -C "$root" -c . | docker import --change "LABEL dev.dockwarm.test=true" --change "ENV PATH=/bin" - "$BASE" >/dev/null
    rm -rf "$root"
fi

TOP=$(mktemp -d /tmp/dockwarm-faults.XXXXXX)
chmod 755 "$TOP"
export NO_COLOR=1 DOCKWARM_DAEMON_IDLE_EXIT=30 DOCKWARM_DAEMON_RESCAN_MS=500
export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=faults GIT_AUTHOR_EMAIL=f@dockwarm.dev \
    GIT_COMMITTER_NAME=faults GIT_COMMITTER_EMAIL=f@dockwarm.dev
unset DOCKER_HOST DOCKER_CONTEXT COMPOSE_PROJECT_NAME

cleanup() {
    for s in "$TOP"/*/state; do
        [ -d "$s" ] || continue
        chmod 700 "$s" 2>/dev/null
        DOCKWARM_STATE_DIR="$s" timeout 5 "$bin" daemon stop >/dev/null 2>&1
        pid=$(cat "$s/daemon.pid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null
    done
    for p in $(cat "$TOP"/*/.project 2>/dev/null); do
        ids=$( { docker images -q --filter "label=dev.dockwarm.project=$p"
                 docker images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$p*"
                 docker images --format '{{.Repository}}:{{.Tag}}' --filter "reference=dockwarm/$p-*"; } | sort -u)
        [ -n "$ids" ] && docker rmi -f $ids >/dev/null 2>&1
    done
    chmod -R u+w "$TOP" 2>/dev/null
    rm -rf "$TOP"
}
trap cleanup EXIT

ROWS_OUT=()
exec 3>&2
row() { # fault expected result measured
    ROWS_OUT+=("$1|$2|$3|$4")
    printf '%-34s %-4s %s\n' "$1" "$3" "$4" >&3
}

# A repository in $TOP/<name>/<project>, with its own state dir; prints the repo path.
# $1: name, $2: seconds the install step sleeps, $3: "compose" for a compose service.
mkrepo() {
    local dir="$TOP/$1" p="dwf$1$RANDOM"
    p=$(echo "$p" | tr -cd 'a-z0-9')
    mkdir -p "$dir/$p" && echo "$p" > "$dir/.project" && cd "$dir/$p" || return 1
    git init -q -b main
    printf 'FROM %s\nWORKDIR /app\nCOPY deps.lock ./\nRUN sh -c "sleep %s; cp deps.lock /app/installed"\nCOPY . .\n' "$BASE" "${2:-0}" > Dockerfile
    if [ "${3:-}" = compose ]; then
        printf 'services:\n  app:\n    build:\n      context: .\n' > compose.yaml
    else
        printf '[project]\nname = "%s"\n\n[[image]]\nname = "app"\n' "$p" > dockwarm.toml
    fi
    echo "base==1 # $p" > deps.lock
    git add -A && git commit -qm init
    cd - >/dev/null
    echo "$dir/$p"
}

dw() { timeout 60 "$bin" "$@"; }
st() { echo "$(dirname "$1")/state"; }
# The daemon's status JSON, or nothing if it does not answer within $2 seconds (default 2).
dstatus() { timeout "${2:-2}" "$bin" daemon status --json 2>/dev/null; }
# Waits up to $1 s for an idle daemon with at least one finished job; 0 when it got there.
wait_idle() {
    local end=$((SECONDS + $1)) j
    while [ $SECONDS -lt $end ]; do
        j=$(dstatus) && python3 -c 'import json,sys; d=json.load(sys.stdin)["daemon"]; sys.exit(0 if d and not d["running"] and not d["queued"] and d["history"] else 1)' <<<"$j" && return 0
        sleep 0.2
    done
    return 1
}
panicked() { grep -qE 'panicked|RUST_BACKTRACE|internal error' "$@"; }
# How many `dockwarm prebuild --full` processes run in directory $1.
builds_in() {
    local n=0 p
    for p in $(pgrep -f "prebuild --full"); do
        [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$1" ] && n=$((n + 1))
    done
    echo $n
}

# --- the rows ------------------------------------------------------------------------------

worktrees_10() {
    local r; r=$(mkrepo wt10 0) ; export DOCKWARM_STATE_DIR=$(st "$r")
    dw -C "$r" init >/dev/null 2>&1
    # git itself cannot add worktrees concurrently (it races on .git/worktrees): one by one,
    # then in all ten at once an init and a checkout (whose hook fires).
    for i in $(seq 1 10); do git -C "$r" worktree add -q -b "b$i" "$r-w$i" 2>/dev/null; done
    for i in $(seq 1 10); do
        dw -C "$r-w$i" init >/dev/null 2>&1 &
        git -C "$r-w$i" checkout -q -b "c$i" 2>/dev/null &
    done
    wait
    local n
    n=$(ls "$DOCKWARM_STATE_DIR/workspaces" | wc -l)
    git -C "$r" fsck --no-progress >/dev/null 2>&1 && [ "$n" = 11 ] && wait_idle 120 \
        && row "10 worktrees at once" "11 registered, git intact" PASS "$n registered" \
        || row "10 worktrees at once" "11 registered, git intact" FAIL "$n registered"
}

kill9_x5() {
    local r; r=$(mkrepo kill9 4 compose); export DOCKWARM_STATE_DIR=$(st "$r")
    dw -C "$r" daemon start >/dev/null
    dw -C "$r" init >/dev/null 2>&1
    local most=0 i n end
    for i in 1 2 3 4 5; do
        echo "round==$i # $r" > "$r/deps.lock"
        end=$((SECONDS + 20))
        until [ "$(builds_in "$r")" -gt 0 ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
        kill -9 "$(cat "$DOCKWARM_STATE_DIR/daemon.pid")" 2>/dev/null
        sleep 0.2
        dw -C "$r" daemon start >/dev/null 2>&1
        end=$((SECONDS + 8))
        while [ $SECONDS -lt $end ]; do
            n=$(builds_in "$r")
            [ "$n" -gt "$most" ] && most=$n
            sleep 0.05
        done
    done
    wait_idle 120
    [ "$most" -le 1 ] && row "kill -9 mid-build x5" "never 2 builds of one workspace" PASS "at most $most at once" \
        || row "kill -9 mid-build x5" "never 2 builds of one workspace" FAIL "$most at once"
}

corrupt_state() {
    local r; r=$(mkrepo corrupt 0); export DOCKWARM_STATE_DIR=$(st "$r")
    DOCKWARM_DAEMON=0 dw -C "$r" prebuild >/dev/null 2>&1
    dw -C "$r" init >/dev/null 2>&1; wait_idle 60
    for f in "$DOCKWARM_STATE_DIR"/builds/*.json "$DOCKWARM_STATE_DIR"/workspaces/*.json; do printf '{"trunc' > "$f"; done
    local out="$TOP/corrupt/out"; : > "$out"
    for c in status doctor fingerprint prebuild "daemon status"; do dw -C "$r" $c >>"$out" 2>&1; done
    if ! panicked "$out" && grep -q "do not read" "$out"; then
        row "corrupted state files" "no panic, doctor names them" PASS "doctor: $(grep -c 'do not read' "$out") warning"
    else row "corrupted state files" "no panic, doctor names them" FAIL "$(tail -1 "$out")"; fi
}

unwritable_state() {
    local r; r=$(mkrepo unwritable 0); export DOCKWARM_STATE_DIR=$(st "$r")
    mkdir -p "$TOP/unwritable/home"; chown -R $NOBODY:$NOBODY "$TOP/unwritable"
    nb() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups env HOME="$TOP/unwritable/home" GIT_CONFIG_GLOBAL=/dev/null "$@"; }
    nb "$bin" -C "$r" init >/dev/null 2>&1; nb "$bin" daemon stop >/dev/null 2>&1
    chmod 500 "$DOCKWARM_STATE_DIR"
    local out; out=$(nb "$bin" -C "$r" init 2>&1); local rc=$?
    chmod 700 "$DOCKWARM_STATE_DIR"
    if [ $rc -ne 0 ] && grep -q "could not start" <<<"$out" && ! grep -q "started the daemon" <<<"$out"; then
        row "unwritable state dir" "init: could not start, and why" PASS "$(grep -o 'Permission denied' <<<"$out" | head -1)"
    else row "unwritable state dir" "init: could not start, and why" FAIL "$(tail -1 <<<"$out")"; fi
}

readonly_hooks() {
    local r; r=$(mkrepo rohooks 0); export DOCKWARM_STATE_DIR=$(st "$r")
    dw -C "$r" hooks install >/dev/null 2>&1
    chmod 555 "$r/.git/hooks"
    local out; out=$(dw -C "$r" hooks uninstall 2>&1)
    git -C "$r" checkout -q -b other 2>/dev/null; local git_rc=$?
    chmod 755 "$r/.git/hooks"
    if [ $git_rc -eq 0 ] && grep -q "hooks uninstall\` again" <<<"$out"; then
        row "read-only hooks dir" "git works; says uninstall again" PASS "git exit 0"
    else row "read-only hooks dir" "git works; says uninstall again" FAIL "$out"; fi
}

moved_binary() {
    local r; r=$(mkrepo moved 0); export DOCKWARM_STATE_DIR=$(st "$r")
    cp "$bin" "$TOP/moved/dockwarm"
    "$TOP/moved/dockwarm" -C "$r" hooks install >/dev/null 2>&1
    mv "$TOP/moved/dockwarm" "$TOP/moved/dockwarm.gone"
    local out; out=$(PATH=/usr/bin:/bin git -C "$r" checkout -q -b other 2>&1); local rc=$?
    [ $rc -eq 0 ] && ! panicked <<<"$out" && row "moved binary" "git works" PASS "git exit 0" \
        || row "moved binary" "git works" FAIL "$out"
}

no_engine() {
    local r; r=$(mkrepo noengine 0); export DOCKWARM_STATE_DIR=$(st "$r")
    local out; out=$(DOCKER_HOST="unix://$TOP/noengine/none.sock" dw -C "$r" prebuild 2>&1); local rc=$?
    local t0=$SECONDS; DOCKER_HOST="unix://$TOP/noengine/none.sock" dw -C "$r" status >/dev/null 2>&1; local s=$?
    if [ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" = 1 ] && [ $s -eq 0 ]; then
        row "unreachable engine" "one line, exit 1; status answers" PASS "status in $((SECONDS - t0)) s"
    else row "unreachable engine" "one line, exit 1; status answers" FAIL "$out"; fi
}

hostile_names() {
    local r; r=$(mkrepo hostile 0); export DOCKWARM_STATE_DIR=$(st "$r")
    dw -C "$r" init >/dev/null 2>&1
    local bad='x$(touch${IFS}PWNED)`touch${IFS}PWNED2`;touch${IFS}PWNED3'
    git -C "$r" checkout -q -b "$bad" 2>/dev/null
    local wt="$TOP/hostile/w \$(touch PWNED4) 'q\""
    git -C "$r" worktree add -q -b 'w2;touch${IFS}PWNED5' "$wt" 2>/dev/null
    (cd "$wt" && dw init >/dev/null 2>&1)
    wait_idle 60
    local pwned; pwned=$( { find "$TOP" -name 'PWNED*'; find / "$HOME" -maxdepth 1 -name 'PWNED*'; } 2>/dev/null | wc -l)
    local n; n=$(ls "$DOCKWARM_STATE_DIR/workspaces" | wc -l)
    if [ "$pwned" = 0 ] && [ "$n" = 2 ] && git -C "$r" fsck --no-progress >/dev/null 2>&1; then
        row "hostile paths and branch names" "nothing injected runs" PASS "0 files made; both registered"
    else row "hostile paths and branch names" "nothing injected runs" FAIL "$pwned files made, $n registered"; fi
}

second_user() {
    local r; r=$(mkrepo seconduser 0); export DOCKWARM_STATE_DIR=$(st "$r")
    dw -C "$r" init >/dev/null 2>&1; wait_idle 60
    chmod 755 "$TOP/seconduser"
    local out; out=$(setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups sh -c \
        "ls '$DOCKWARM_STATE_DIR/workspaces' 2>&1; cat '$DOCKWARM_STATE_DIR'/logs/* 2>&1 | head -1; HOME=/tmp '$bin' daemon status --json 2>&1")
    if grep -q '"running": false' <<<"$out" && ! grep -q '\.json' <<<"$out"; then
        row "a second local user" "cannot read state or reach socket" PASS "denied"
    else row "a second local user" "cannot read state or reach socket" FAIL "$(head -2 <<<"$out" | tr '\n' ' ')"; fi
}

dev_zero() {
    local r; r=$(mkrepo devzero 0); export DOCKWARM_STATE_DIR=$(st "$r")
    dw -C "$r" daemon start >/dev/null; dw -C "$r" init >/dev/null 2>&1; wait_idle 60
    ln -sf /dev/zero "$r/deps.lock"
    local slow=0 worst=0 i t0 t
    for i in $(seq 1 30); do
        t0=$(date +%s%N)
        dstatus 1 >/dev/null || slow=$((slow + 1))
        t=$(( ($(date +%s%N) - t0) / 1000000 )); [ $t -gt $worst ] && worst=$t
        sleep 0.1
    done
    local fp; fp=$(dw -C "$r" fingerprint 2>&1)
    rm "$r/deps.lock"; echo "restored # $r" > "$r/deps.lock"
    sleep 1
    if [ $slow = 0 ] && grep -q "character device" <<<"$fp" && wait_idle 60; then
        row "lockfile -> /dev/zero" "status within 1 s; recovers" PASS "slowest status ${worst} ms"
    else row "lockfile -> /dev/zero" "status within 1 s; recovers" FAIL "$slow slow; $fp"; fi
}

non_utf8() {
    local r; r=$(mkrepo nonutf8 0); export DOCKWARM_STATE_DIR=$(st "$r")
    local out="$TOP/nonutf8/out"; : > "$out"
    for c in config fingerprint status doctor init prebuild; do JUNK=$'caf\xe9' dw -C "$r" $c >>"$out" 2>&1; done
    local wt=$TOP/nonutf8/$'w-caf\xe9'
    git -C "$r" worktree add -q -b w "$wt" 2>>"$out"
    (cd "$wt" && dw init) >>"$out" 2>&1
    if ! panicked "$out" && grep -q "not valid UTF-8" "$out"; then
        row "non-UTF-8 variable and path" "no panic; the path named" PASS "$(grep -c 'not valid UTF-8' "$out") lines name it"
    else row "non-UTF-8 variable and path" "no panic; the path named" FAIL "$(grep -m1 -E 'panicked|internal' "$out")"; fi
}

wrong_docker_host() {
    local r; r=$(mkrepo wronghost 0); export DOCKWARM_STATE_DIR=$(st "$r")
    DOCKER_HOST="unix://$TOP/wronghost/none.sock" dw -C "$r" daemon start >/dev/null
    dw -C "$r" init >/dev/null 2>&1
    if wait_idle 60 && dstatus | grep -q '"result": "ok"'; then
        row "daemon under a wrong DOCKER_HOST" "a correct shell's job builds" PASS "built"
    else row "daemon under a wrong DOCKER_HOST" "a correct shell's job builds" FAIL "$(dstatus | grep -m1 engine_error)"; fi
}

modes() {
    local r; r=$(mkrepo modes 0); export DOCKWARM_STATE_DIR=$(st "$r")
    (umask 000; dw -C "$r" init >/dev/null 2>&1); wait_idle 60
    local loose; loose=$(find "$DOCKWARM_STATE_DIR" -perm /077 | wc -l)
    [ "$loose" = 0 ] && row "state modes (umask 000)" "dirs 0700, files 0600" PASS "0 open entries" \
        || row "state modes (umask 000)" "dirs 0700, files 0600" FAIL "$loose open entries"
}

load_50() {
    local r; r=$(mkrepo load50 0); export DOCKWARM_STATE_DIR=$(st "$r")
    local i
    for i in $(seq 1 49); do git -C "$r" worktree add -q -b "b$i" "$r-w$i" 2>/dev/null; done
    dw -C "$r" daemon start >/dev/null
    dw -C "$r" init >/dev/null 2>&1
    for i in $(seq 1 49); do dw -C "$r-w$i" init >/dev/null 2>&1; done
    local pid; pid=$(cat "$DOCKWARM_STATE_DIR/daemon.pid")
    local end=$((SECONDS + 31)) n=0 rss=0 x slow=0 w t0=${EPOCHREALTIME/./} due
    while [ $n -lt 1000 ] && [ $SECONDS -lt $end ]; do
        # One write every 30 ms: 1,000 in 30 s.
        due=$((t0 + n * 30000 - ${EPOCHREALTIME/./}))
        [ $due -gt 0 ] && sleep "0.$(printf '%06d' $due)"
        w=$((n % 50)); [ $w = 0 ] && d="$r" || d="$r-w$w"
        echo "load==$n # $r" > "$d/deps.lock.tmp" && mv "$d/deps.lock.tmp" "$d/deps.lock"
        n=$((n + 1))
        if [ $((n % 100)) = 0 ]; then
            dstatus 1 >/dev/null || slow=$((slow + 1))
            x=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); [ "$x" -gt "$rss" ] && rss=$x
        fi
    done
    # The same final content everywhere: the queue ends with one build.
    for i in $(seq 0 49); do [ $i = 0 ] && d="$r" || d="$r-w$i"; echo "final # $r" > "$d/deps.lock"; done
    x=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); [ "$x" -gt "$rss" ] && rss=$x
    if [ $slow = 0 ] && kill -0 "$pid" 2>/dev/null; then
        row "50 workspaces, $n writes in 30 s" "daemon answers, stays small" PASS "peak RSS $((rss / 1024)).$(( (rss % 1024) * 10 / 1024 )) MB"
    else row "50 workspaces, $n writes in 30 s" "daemon answers, stays small" FAIL "$slow slow answers"; fi
    dw -C "$r" daemon stop >/dev/null 2>&1
}

ALL="worktrees_10 kill9_x5 corrupt_state unwritable_state readonly_hooks moved_binary no_engine hostile_names second_user dev_zero non_utf8 wrong_docker_host modes load_50"
for r in ${ROWS:-$ALL}; do
    cd "$TOP" && "$r" >/dev/null 2>&1
    DOCKWARM_STATE_DIR="${DOCKWARM_STATE_DIR:-}" timeout 5 "$bin" daemon stop >/dev/null 2>&1
done

echo
echo "| fault | expected | result | measured |"
echo "| --- | --- | --- | --- |"
failed=0
for line in "${ROWS_OUT[@]}"; do
    IFS='|' read -r f e res m <<<"$line"
    echo "| $f | $e | $res | $m |"
    [ "$res" = PASS ] || failed=1
done
exit $failed
