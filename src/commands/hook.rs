//! `dockwarm hook NAME ARGS...`: what the installed git hooks run.
//!
//! It never fails the git command and never waits for the engine: it hashes the dependency
//! inputs (microseconds for lockfiles), compares them with what it saw last in this workspace,
//! and when they changed hands the change to the daemon (starting it when none answers) and
//! returns.

use std::io::Read;
use std::path::Path;

use crate::changes::{self, Look, ObserveError};
use crate::config::ConfigError;
use crate::env::Env;
use crate::plan;
use crate::state::State;
use crate::workspace::Workspace;

/// git's "no commit" id: post-checkout from it is `git worktree add` (or a first clone).
const NULL_REF: &str = "0000000000000000000000000000000000000000";

/// How long the hook may take before it gives up, unless `DOCKWARM_HOOK_TIMEOUT` (seconds)
/// says otherwise. Everything it does is local file work, so this only fires when a file read
/// hangs (a network filesystem, a FIFO where a lockfile should be).
const DEFAULT_TIMEOUT_SECS: f64 = 3.0;

/// Stops the process, with one line and exit 0, if the hook runs past its deadline: git waits
/// for its hooks, and the shim starts no watchdog process of its own (each fork costs git time).
/// A timer signal rather than a thread: nothing to start on the path every checkout takes.
pub fn arm_watchdog(env: &Env) {
    let secs = env.hook_timeout().unwrap_or(DEFAULT_TIMEOUT_SECS);
    static LINE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let _ = LINE.set(
        format!(
            "dockwarm: the hook took over {secs} s and stopped (the git command is unaffected)\n"
        )
        .into_bytes(),
    );
    extern "C" fn expired(_: libc::c_int) {
        // SAFETY: only async-signal-safe calls: an atomic load (OnceLock::get), write(2) of a
        // buffer that lives for the whole process, _exit(2).
        unsafe {
            if let Some(line) = LINE.get() {
                libc::write(2, line.as_ptr().cast(), line.len());
            }
            libc::_exit(0);
        }
    }
    let whole = secs.trunc();
    let timer = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: whole.min(i32::MAX as f64) as libc::time_t,
            // At least 1 µs: an all-zero value would disarm the timer.
            tv_usec: (((secs - whole) * 1e6) as libc::suseconds_t)
                .max(i64::from(whole == 0.0) as libc::suseconds_t),
        },
    };
    // SAFETY: installs a handler that only calls async-signal-safe functions, then arms the
    // process's real-time interval timer (nothing else in dockwarm uses SIGALRM).
    unsafe {
        libc::signal(
            libc::SIGALRM,
            expired as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut());
    }
}

/// Runs the hook; returns at most one line for the user. Errors become that line.
pub fn run(env: &Env, dir: &Path, name: &str, args: &[String]) -> Option<String> {
    if name == crate::hooks::REFS_HOOK {
        return match refs_moved(env, dir, args) {
            Ok(()) => None,
            Err(e) => Some(format!(
                "dockwarm: {} (the git command is unaffected)",
                crate::commands::one_line(&e)
            )),
        };
    }
    if name == "post-rewrite" {
        // git writes the rewritten commits to stdin; drain it so git never blocks on the pipe.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
    match handle(env, dir, name, args) {
        Ok(message) => message,
        Err(e) => Some(format!(
            "dockwarm: {} (the git command is unaffected)",
            crate::commands::one_line(&e)
        )),
    }
}

fn handle(env: &Env, dir: &Path, name: &str, args: &[String]) -> anyhow::Result<Option<String>> {
    let new_workspace = match name {
        "post-checkout" => {
            // Flag 0: a file checkout (`git checkout -- path`), not a branch switch.
            if args.get(2).map(String::as_str) == Some("0") {
                return Ok(None);
            }
            args.first().is_some_and(|old| old == NULL_REF)
        }
        "post-merge" | "post-rewrite" => false,
        _ => return Ok(None),
    };
    // No compose process on the hook's path: compose's cached answer, else the own reader.
    crate::compose::forbid_processes();
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    if new_workspace {
        // A worktree made anew where an archived one was is not the archived one.
        crate::registry::unarchive(&state, &ws.root)?;
    }
    let dialect = plan::remembered_dialect(&state);
    let seen = match changes::observe(&state, &ws, dialect, Look::Hook) {
        Ok(seen) => seen,
        // Archived means quiet, until `dockwarm init` there again.
        Err(ObserveError::Archived { .. }) => return Ok(None),
        // A repository with nothing to build has nothing to keep warm.
        Err(ObserveError::Plan(ConfigError::NoImages { .. })) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if let Some(e) = seen.plan.images.iter().find_map(|i| i.deps.as_ref().err()) {
        return Err(anyhow::anyhow!("{e}"));
    }
    let new = new_workspace || seen.newly_registered;
    if seen.changed.is_empty() && !new {
        return Ok(None);
    }
    // A new workspace is handed over whole; otherwise only the images that changed.
    let images = if new {
        Vec::new()
    } else {
        seen.changed.clone()
    };
    let what = if new {
        "new workspace".to_string()
    } else {
        format!("dependencies of {} changed", seen.changed.join(", "))
    };
    let handed = crate::daemon::client::hand_off(&state, &ws.root, &images)
        .map_err(|e| anyhow::Error::new(e).context(what.clone()))?;
    Ok(Some(format!(
        "dockwarm: {what}; {}",
        handed.describe(&state)
    )))
}

/// `reference-transaction committed`, with `<old> <new> <ref>` lines on stdin (the shim lets
/// only transactions that moved a `refs/remotes/` ref through): the moved remote-tracking
/// refs go to the daemon, which decides whether any is worth a prebuild. Nothing is planned
/// here — planning a commit reads git's objects, which is the daemon's work, off git's time.
/// No daemon running: one is started only when this repository has a registered workspace
/// (it looks at the refs when it starts).
fn refs_moved(env: &Env, dir: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    if args.first().map(String::as_str) != Some("committed") {
        return Ok(());
    }
    let refs: Vec<String> = input
        .lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let (_old, new, name) = (parts.next()?, parts.next()?, parts.next()?);
            (name.starts_with("refs/remotes/") && !new.bytes().all(|b| b == b'0'))
                .then(|| name.to_string())
        })
        .collect();
    if refs.is_empty() || crate::daemon::client::disabled(env) {
        return Ok(());
    }
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    let request = crate::daemon::protocol::Request::RefsMoved {
        path: ws.root.clone(),
        refs,
    };
    match crate::daemon::client::send(&state, &request) {
        Ok(()) => Ok(()),
        Err(crate::daemon::client::ClientError::NotRunning) => {
            let ours = crate::registry::list(&state)
                .iter()
                .any(|w| Workspace::discover(&w.path).is_ok_and(|o| o.main_root == ws.main_root));
            if ours {
                crate::daemon::client::spawn(&state)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
