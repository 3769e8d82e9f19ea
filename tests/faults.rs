//! Faults and hostile input (issue #16): what a hostile or unlucky user's machine does to
//! dockwarm — a lockfile that never ends, bytes that are not UTF-8, a daemon started under the
//! wrong engine, `kill -9` mid-build, an unwritable or corrupted state directory — with real
//! git, real processes and the real engine. `scripts/faults.sh` runs the same matrix from the
//! outside and prints a table.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{engine, full_prebuilds_in, git, git_env, wait_until, Daemonized};

/// Lockfile, an install step (`sleep` long enough to be caught mid-build), then the source.
fn dockerfile(sleep: u32) -> String {
    format!(
        "FROM dockwarm-test/busybox:latest\nWORKDIR /app\nCOPY deps.lock ./\n\
         RUN sh -c 'sleep {sleep}; cat deps.lock > /app/installed'\nCOPY . .\n"
    )
}

const COMPOSE: &str = "services:\n  app:\n    build:\n      context: .\n";

/// The fixture of these tests: a daemonized project whose dependency stage sleeps `sleep` s.
type Fx = Daemonized;

fn fx(sleep: u32) -> Fx {
    Daemonized::new(&dockerfile(sleep), COMPOSE)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn assert_no_panic(what: &str, out: &Output) {
    let err = text(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(101),
        "{what} panicked: {}",
        show(out)
    );
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("internal error"),
        "{what}: {}",
        show(out)
    );
}

fn non_utf8(prefix: &str) -> OsString {
    let mut b = prefix.as_bytes().to_vec();
    b.extend_from_slice(b"caf\xe9");
    OsStr::from_bytes(&b).to_os_string()
}

/// Point 2: a variable that is not UTF-8 in the environment of every command, and of the
/// daemon they start, panics nothing; the daemon started from that shell builds.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_non_utf8_variable_panics_no_command_and_the_daemon_it_starts_builds() {
    engine();
    let mut fx = fx(0);
    fx.env("JUNK", non_utf8(""));
    let root = fx.p.root.clone();
    for args in [
        &["config"][..],
        &["fingerprint"],
        &["status"],
        &["hooks", "status"],
        &["doctor"],
        &["daemon", "status"],
    ] {
        assert_no_panic(&format!("{args:?}"), &fx.run(&root, args));
    }
    // init starts the daemon from this environment; its first job builds.
    let out = fx.run(&root, &["init"]);
    assert_no_panic("init", &out);
    assert!(out.status.success(), "{}", show(&out));
    let st = fx.wait_idle(1, Duration::from_secs(90));
    assert_eq!(
        st["daemon"]["history"][0]["result"],
        "ok",
        "{st:#}\n{}",
        fx.log()
    );
    // A real checkout fires the hook with the variable in git's environment.
    let out = Command::new("git")
        .args(["checkout", "-q", "-b", "other"])
        .current_dir(&root)
        .envs(git_env())
        .env("DOCKWARM_STATE_DIR", &fx.p.state)
        .env("JUNK", non_utf8(""))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_no_panic("the post-checkout hook", &out);
    let out = fx.run(&root, &["prebuild"]);
    assert_no_panic("prebuild", &out);
    assert!(out.status.success(), "{}", show(&out));
    assert_no_panic("status", &fx.run(&root, &["status"]));
    assert_no_panic("archive", &fx.run(&root, &["archive"]));
}

/// Point 2: a checkout at a path that is not UTF-8 gets one line naming it, from a command and
/// from the hook git runs when `git worktree add` makes it.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_non_utf8_checkout_path_gets_one_line_from_commands_and_hooks() {
    engine();
    let fx = fx(0);
    let root = fx.p.root.clone();
    fx.ok(&root, &["init"]);
    let mut name = fx.p.tmp.path().as_os_str().to_os_string();
    name.push("/");
    name.push(non_utf8("wt-"));
    let wt = PathBuf::from(name);
    let out = Command::new("git")
        .arg("worktree")
        .arg("add")
        .arg("-q")
        .arg("-b")
        .arg("b2")
        .arg(&wt)
        .current_dir(&root)
        .envs(git_env())
        .env("DOCKWARM_STATE_DIR", &fx.p.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_no_panic("the hook of `git worktree add`", &out);
    let err = text(&out.stderr);
    assert!(
        err.contains("not valid UTF-8") && err.contains("wt-caf"),
        "the hook names the problem: {err}"
    );
    for args in [
        &["init"][..],
        &["config"],
        &["prebuild"],
        &["status"],
        &["archive"],
    ] {
        let out = fx.run(&wt, args);
        assert_no_panic(&format!("{args:?}"), &out);
        let err = text(&out.stderr);
        if args != ["status"] {
            assert!(!out.status.success(), "{args:?}: {}", show(&out));
            assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
            assert!(err.contains("not valid UTF-8"), "{args:?}: {err}");
        }
    }
}

/// Every entry under `dir` that other users could read, write or enter.
fn loose_modes(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut loose = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let m = std::fs::symlink_metadata(&d).unwrap();
        if m.mode() & 0o077 != 0 {
            loose.push(format!("{} {:o}", d.display(), m.mode() & 0o7777));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&d).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    loose
}

/// Point 6: with a umask of 0, everything dockwarm writes in its state directory (registry,
/// build records and logs, locks, the daemon's pid, log and socket) is 0700/0600; a state
/// directory left open by an older dockwarm is tightened by the next command.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn the_state_directory_is_private_whatever_the_umask() {
    engine();
    let fx = fx(0);
    let root = fx.p.root.clone();
    // Through sh, so that dockwarm, and the daemon it starts, run under a umask of 0.
    let umask0 = |args: &[&str]| {
        let c = fx.cmd(&root, args);
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg("umask 000; exec \"$0\" \"$@\"")
            .arg(c.get_program())
            .args(c.get_args())
            .current_dir(&root);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.output().unwrap()
    };
    let out = umask0(&["init"]);
    assert!(out.status.success(), "{}", show(&out));
    fx.wait_idle(1, Duration::from_secs(90));
    let out = umask0(&["prebuild"]);
    assert!(out.status.success(), "{}", show(&out));
    for must in [
        "workspaces",
        "builds",
        "logs/daemon.log",
        "locks",
        "daemon.pid",
        "daemon.sock",
    ] {
        assert!(fx.p.state.join(must).exists(), "{must} was not made");
    }
    assert!(
        std::fs::read_dir(fx.p.state.join("logs")).unwrap().count() >= 2,
        "a build log besides the daemon's"
    );
    let loose = loose_modes(&fx.p.state);
    assert!(loose.is_empty(), "readable by others: {loose:#?}");
    // Another local user, with every directory above the state dir open to them, cannot reach
    // the daemon's socket.
    std::fs::set_permissions(fx.p.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = fx.p.tmp.path().join("nobody-home");
    let out = as_nobody(
        Path::new("/"),
        &home,
        &fx.p.state,
        &["daemon", "status", "--json"],
    );
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    assert_eq!(
        v["running"], false,
        "another user reached the daemon: {v:#}"
    );
    assert!(fx.daemon()["running"] == true);

    // An older dockwarm's directory, open to all: the next command closes it.
    std::fs::set_permissions(&fx.p.state, std::fs::Permissions::from_mode(0o755)).unwrap();
    fx.ok(&root, &["status"]);
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(&fx.p.state).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "state dir left {mode:o}");
}

/// Point 7: a state path that is a regular file is named, with the fix, by every command that
/// needs it, and by `doctor`.
#[test]
fn a_state_path_that_is_a_file_is_named_with_its_fix() {
    let fx = fx(0);
    let root = fx.p.root.clone();
    std::fs::write(&fx.p.state, "not a directory\n").unwrap();
    for args in [&["status"][..], &["init"], &["daemon", "start"], &["logs"]] {
        let out = fx.run(&root, args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {}", show(&out));
        assert!(
            err.contains(&fx.p.state.display().to_string())
                && err.contains("not a directory")
                && err.contains("DOCKWARM_STATE_DIR"),
            "{args:?}: {}",
            show(&out)
        );
    }
    let out = fx.run(&root, &["doctor"]);
    let said = text(&out.stdout);
    assert!(
        said.lines().any(|l| l.starts_with("FAIL state directory")
            && l.contains(&fx.p.state.display().to_string())),
        "{}",
        show(&out)
    );
    std::fs::remove_file(&fx.p.state).unwrap();
}

/// Point 7: a build record that does not read is reported by `doctor` and rewritten by the
/// next prebuild, instead of being skipped silently forever.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_corrupt_build_record_is_reported_and_rewritten() {
    engine();
    let mut fx = fx(0);
    fx.env("DOCKWARM_DAEMON", "0");
    let root = fx.p.root.clone();
    fx.ok(&root, &["prebuild"]);
    let builds = fx.p.state.join("builds");
    let record = std::fs::read_dir(&builds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a build record");
    std::fs::write(&record, "{\"fingerprint\": \"trunc").unwrap();
    let out = fx.run(&root, &["doctor"]);
    let said = text(&out.stdout);
    assert!(
        said.lines()
            .any(|l| l.starts_with("warn state directory")
                && l.contains(&record.display().to_string())),
        "{}",
        show(&out)
    );
    fx.ok(&root, &["prebuild"]);
    let back: Value = serde_json::from_slice(&std::fs::read(&record).unwrap())
        .unwrap_or_else(|e| panic!("{} still does not read: {e}", record.display()));
    assert_eq!(back["status"], "cached", "{back:#}");
    let out = fx.run(&root, &["doctor"]);
    assert!(
        text(&out.stdout).contains("ok   state directory"),
        "{}",
        show(&out)
    );
}

/// Asks the daemon for its status over its socket, giving it `within` to answer.
fn daemon_answers(state: &Path, within: Duration) -> Result<Value, String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(state.join("daemon.sock"))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(within)).unwrap();
    s.set_write_timeout(Some(within)).unwrap();
    s.write_all(b"{\"op\":\"status\"}\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .map_err(|e| format!("no answer within {within:?}: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))
}

/// Point 1: a lockfile that never ends (a symlink to /dev/zero) is refused by name at once;
/// the daemon keeps answering throughout and builds again when the file comes back.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_lockfile_that_never_ends_jams_nothing() {
    engine();
    let fx = fx(0);
    let root = fx.p.root.clone();
    fx.ok(&root, &["daemon", "start"]);
    fx.ok(&root, &["init"]);
    fx.wait_idle(1, Duration::from_secs(90));
    let lock = root.join("deps.lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &lock).unwrap();
    // Until the daemon has looked at it (its log names it), and a little past that, every
    // status request gets its answer within a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after_seen = 0;
    while after_seen < 10 {
        if let Err(e) = daemon_answers(&fx.p.state, Duration::from_secs(1)) {
            panic!("the daemon stopped answering: {e}\n{}", fx.log());
        }
        if fx.log().contains("is a character device") {
            after_seen += 1;
        }
        assert!(Instant::now() < deadline, "never evaluated:\n{}", fx.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The user's commands say what is wrong, and finish.
    for args in [&["fingerprint"][..], &["prebuild"]] {
        let out = fx.run(&root, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            err.contains("deps.lock is a character device, not a regular file"),
            "{args:?}: {err}"
        );
    }
    let out = fx.run(&root, &["status"]);
    assert_no_panic("status", &out);
    let d = fx.daemon();
    assert_eq!(d["running"], true, "{d:#}");
    // The file comes back, changed: the daemon builds it.
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, format!("restored==2\n# {}\n", fx.p.name)).unwrap();
    let st = fx.wait_idle(2, Duration::from_secs(90));
    let last = st["daemon"]["history"].as_array().unwrap().last().cloned();
    assert_eq!(last.unwrap()["result"], "ok", "{st:#}\n{}", fx.log());
}

/// Point 1 and 7: a FIFO, a directory or a file over the size cap where a lockfile should be
/// is an error naming the path, and the directory says why the COPY became a source copy.
#[test]
fn inputs_that_are_not_regular_files_are_named() {
    let fx = fx(0);
    let root = fx.p.root.clone();
    let lock = root.join("deps.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let out = fx.run(&root, &["fingerprint"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        err.contains("`deps.lock` is a directory here") && err.contains("put the file back"),
        "{err}"
    );
    std::fs::remove_dir(&lock).unwrap();
    std::fs::write(&lock, "x".repeat(5000)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dockwarm"))
        .arg("fingerprint")
        .current_dir(&root)
        .env("DOCKWARM_STATE_DIR", &fx.p.state)
        .env("DOCKWARM_MAX_INPUT_BYTES", "4096")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(err.contains("deps.lock is over 4096 bytes"), "{err}");
    // A symlink to a regular file is followed.
    std::fs::write(root.join("real.lock"), "real\n").unwrap();
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink("real.lock", &lock).unwrap();
    fx.ok(&root, &["fingerprint"]);
}

/// The unprivileged user the tests run dockwarm as where root would ignore file modes.
const NOBODY: &str = "65534";

/// `dockwarm ARGS` in `dir` as user `nobody` (whose home is `home`), with `state`.
fn as_nobody(dir: &Path, home: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            env!("CARGO_BIN_EXE_dockwarm"),
        ])
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("DOCKWARM_STATE_DIR", state)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn chown_nobody(path: &Path) {
    crate::common::sh(
        Command::new("chown")
            .args(["-R", &format!("{NOBODY}:{NOBODY}")])
            .arg(path),
    );
}

/// Point 5: with a state directory the daemon cannot create its socket in, `init` does not say
/// "started the daemon": it says the background prebuild could not start, and why, and fails.
/// Run as `nobody`, since root writes through any mode.
#[test]
fn init_says_when_the_background_prebuild_could_not_start() {
    let fx = fx(0);
    let root = fx.p.root.clone();
    let home = fx.p.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    chown_nobody(fx.p.tmp.path());
    let state = fx.p.state.clone();
    let out = as_nobody(&root, &home, &state, &["init"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = as_nobody(&root, &home, &state, &["daemon", "stop"]);
    assert!(out.status.success(), "{}", show(&out));
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = as_nobody(&root, &home, &state, &["init"]);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let said = text(&out.stdout);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(!said.contains("started the daemon"), "{}", show(&out));
    assert!(said.contains("prebuild: not started"), "{}", show(&out));
    assert!(
        err.contains("could not start")
            && err.contains("daemon.sock")
            && err.contains("Permission denied"),
        "{}",
        show(&out)
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Point 5: inits at once each name the daemon that runs, never one that lost the race and
/// exited.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn concurrent_inits_name_the_daemon_that_runs() {
    engine();
    let fx = fx(0);
    let root = fx.p.root.clone();
    let children: Vec<_> = (0..6)
        .map(|_| {
            fx.cmd(&root, &["init"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let running = fx.daemon()["daemon"]["pid"]
        .as_u64()
        .expect("a daemon runs");
    for out in &outs {
        assert!(out.status.success(), "{}", show(out));
        let said = text(&out.stdout);
        let line = said
            .lines()
            .find(|l| l.starts_with("prebuild:"))
            .unwrap_or_else(|| panic!("{}", show(out)));
        if let Some(rest) = line.split("(pid ").nth(1) {
            let pid: u64 = rest.split(')').next().unwrap().parse().unwrap();
            assert_eq!(
                pid, running,
                "an init named a daemon that is not running: {line}"
            );
        } else {
            assert!(
                line.contains("handed to the daemon") || line.contains("prebuilding"),
                "{line}"
            );
        }
    }
}

/// Point 5: a hook whose daemon takes the request but never answers does not claim
/// "prebuilding"; it says the daemon did not acknowledge the change. A real `git checkout`.
#[test]
fn a_hook_does_not_claim_prebuilding_to_a_daemon_that_does_not_answer() {
    let fx = fx(0);
    let root = fx.p.root.clone();
    let mut env = fx.envs.clone();
    env.push(("DOCKWARM_STATE_DIR".into(), fx.p.state.clone().into()));
    let checkout = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .envs(git_env())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    // A jammed daemon: it holds the socket and never reads or answers.
    std::fs::create_dir_all(&fx.p.state).unwrap();
    let sock = fx.p.state.join("daemon.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // Hooks in place; the first checkout registers the workspace.
    crate::common::sh(&mut fx.cmd(&root, &["hooks", "install"]));
    let out = checkout(&["checkout", "-q", "-b", "next"]);
    assert!(
        text(&out.stderr).contains("did not acknowledge"),
        "{}",
        show(&out)
    );
    fx.p.write("deps.lock", "changed==2\n");
    git(&root, &["commit", "-qam", "lock"]);
    // Back to main (its lockfile is the one registered: nothing to say), then to the change.
    let out = checkout(&["checkout", "-q", "main"]);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        show(&out)
    );
    let out = checkout(&["checkout", "-q", "next"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}", show(&out));
    assert!(err.contains("dependencies of app changed"), "{err}");
    assert!(!err.contains("prebuilding"), "{err}");
    assert!(err.contains("did not acknowledge"), "{err}");
    // Point 1's symptoms of a jammed daemon: `daemon status` does not call it "not running",
    // and `daemon stop` says how to stop it rather than "Resource temporarily unavailable".
    let me = std::process::id();
    std::fs::write(fx.p.state.join("daemon.pid"), me.to_string()).unwrap();
    let said = fx.ok(&root, &["daemon", "status"]);
    assert!(
        said.contains(&format!("pid {me} is alive but does not answer")),
        "{said}"
    );
    let out = fx.run(&root, &["daemon", "stop"]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(err.contains(&format!("`kill {me}`")), "{err}");
    std::fs::remove_file(fx.p.state.join("daemon.pid")).unwrap();
    drop(listener);
}

/// Point 7: `status` with the engine back finishes the cleanups an archive owed while it was
/// down, as the README says the next dockwarm that reaches the engine does.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn status_finishes_the_cleanups_an_archive_owed_while_the_engine_was_down() {
    engine();
    let mut fx = fx(0);
    let root = fx.p.root.clone();
    // The daemon init starts builds and tags the workspace's image; then it stops.
    fx.ok(&root, &["init"]);
    fx.wait_idle(1, Duration::from_secs(90));
    fx.ok(&root, &["daemon", "stop"]);
    let tag = format!("{}-app", fx.p.name);
    let exists = |t: &str| {
        Command::new("docker")
            .args(["image", "inspect", t])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(exists(&tag), "{tag} was not made");
    let dead = fx.p.tmp.path().join("no-engine.sock");
    fx.env("DOCKER_HOST", format!("unix://{}", dead.display()));
    let said = fx.ok(&root, &["archive"]);
    assert!(said.contains("engine unreachable"), "{said}");
    assert!(exists(&tag), "archive reached the engine after all");
    fx.envs.retain(|(k, _)| k != "DOCKER_HOST");
    let out = fx.run(&root, &["status"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!exists(&tag), "status left {tag}: {}", show(&out));
    let pending = std::fs::read_dir(fx.p.state.join("pending"))
        .unwrap()
        .count();
    assert_eq!(pending, 0, "cleanups still owed");
}

/// Point 7: `hooks uninstall` in a read-only hooks directory says to run `uninstall` again,
/// not `install`.
#[test]
fn hooks_uninstall_in_a_read_only_dir_names_uninstall() {
    let fx = fx(0);
    let root = fx.p.root.clone();
    fx.ok(&root, &["hooks", "install"]);
    let hooks = root.join(".git/hooks");
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = fx.run(&root, &["hooks", "uninstall"]);
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(err.contains("read-only"), "{err}");
    assert!(err.contains("`dockwarm hooks uninstall` again"), "{err}");
    assert!(!err.contains("hooks install"), "{err}");
}

/// Point 4: `kill -9` of the daemon mid-build, and a new daemon at once: never two builds of
/// the workspace at the same time; the new daemon waits for the orphan, then finishes.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn after_kill_9_a_new_daemon_never_builds_beside_the_orphan() {
    engine();
    let fx = fx(6);
    let root = fx.p.root.clone();
    fx.ok(&root, &["daemon", "start"]);
    let first = fx.pid().unwrap();
    fx.ok(&root, &["init"]);
    wait_until(
        "a build to start",
        Duration::from_secs(30),
        || fx.log(),
        || !full_prebuilds_in(&root).is_empty(),
    );
    assert!(Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until(
        "the daemon to die of kill -9",
        Duration::from_secs(10),
        || fx.log(),
        || !Path::new(&format!("/proc/{first}")).exists(),
    );
    fx.ok(&root, &["daemon", "start"]);
    // Until the new daemon is idle, never more than one full build of the workspace.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let builds = full_prebuilds_in(&root);
        assert!(
            builds.len() <= 1,
            "two builds of one workspace at once: {builds:?}\n{}",
            fx.log()
        );
        let d = fx.daemon();
        let d = &d["daemon"];
        let idle = d["running"].as_array().is_some_and(|a| a.is_empty())
            && d["queued"].as_array().is_some_and(|a| a.is_empty())
            && d["history"].as_array().is_some_and(|a| !a.is_empty());
        if idle && builds.is_empty() {
            assert_eq!(d["history"][0]["result"], "ok", "{d:#}\n{}", fx.log());
            break;
        }
        assert!(Instant::now() < deadline, "not idle: {d:#}\n{}", fx.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let st: Value = serde_json::from_str(&fx.ok(&root, &["status", "--json"])).unwrap();
    assert_eq!(st["workspaces"][0]["images"][0]["state"], "warm", "{st:#}");
}

/// Point 3: a daemon started under a wrong `DOCKER_HOST` builds a workspace on the engine its
/// user's shell names, and `status` names the daemon's engine error for a workspace whose
/// shell named an engine that does not answer.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_daemon_started_under_a_wrong_docker_host_builds_on_the_users_engine() {
    engine();
    let fx = fx(0);
    let root = fx.p.root.clone();
    let bad = format!(
        "unix://{}",
        fx.p.tmp.path().join("no-engine.sock").display()
    );
    let out = fx
        .cmd(&root, &["daemon", "start"])
        .env("DOCKER_HOST", &bad)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    // From a correct shell: it builds.
    fx.ok(&root, &["init"]);
    let st = fx.wait_idle(1, Duration::from_secs(60));
    assert_eq!(
        st["daemon"]["history"][0]["result"],
        "ok",
        "{st:#}\n{}",
        fx.log()
    );
    // A second workspace set up from a shell with the wrong engine: its build waits, and
    // status, from the correct shell, says why.
    let wt = fx.p.tmp.path().join(format!("{}-wt", fx.p.name));
    git(
        &root,
        &["worktree", "add", "-q", "-b", "wt", wt.to_str().unwrap()],
    );
    let out = fx
        .cmd(&wt, &["init"])
        .env("DOCKER_HOST", &bad)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let mut d = Value::Null;
    wait_until(
        "the daemon to find the engine down",
        Duration::from_secs(30),
        || fx.log(),
        || {
            d = fx.daemon();
            d["daemon"]["engine"] == "down"
        },
    );
    let err = d["daemon"]["engine_error"].as_str().unwrap_or_default();
    assert!(err.contains("no-engine.sock"), "{d:#}");
    let said = fx.ok(&root, &["status"]);
    assert!(
        said.contains("cannot reach its engine") && said.contains("no-engine.sock"),
        "{said}"
    );
    let said = fx.ok(&root, &["daemon", "status"]);
    assert!(
        said.contains("engine error") && said.contains("no-engine.sock"),
        "{said}"
    );
    crate::common::cleanup_project(&format!("{}-wt", fx.p.name));
}
