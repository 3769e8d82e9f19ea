//! `dockwarm daemon start|stop|status` and `dockwarm watch`: printing what `daemon::client`
//! answers.

use std::time::{Duration, Instant};

use crate::daemon::client::{self, log_path, spawn, ClientError};
use crate::daemon::protocol::{DaemonStatus, Request};
use crate::daemon::{self, server};
use crate::state::State;

/// What `dockwarm daemon` was asked to do: clap's subcommand, parsed in main.rs. The variant
/// docs are the help text.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Start it in the background (does nothing when one runs).
    // Waits until the new daemon answers; one already running is left alone.
    Start,
    /// Stop it; a build in progress finishes on its own.
    // Waits until the daemon is gone.
    Stop,
    /// Whether it runs, and what it is building.
    // Also what it has queued or saw fail.
    Status {
        /// One JSON object (running, socket, log, the daemon's own status) instead of text.
        // No help line, as before: `help = None` keeps `--json` bare in `--help`.
        #[arg(long, help = None)]
        json: bool,
    },
}

/// How long `daemon start` waits for a new daemon to answer.
const START_WAIT: Duration = Duration::from_secs(5);
/// How long `daemon stop` waits for the daemon to go.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Runs `dockwarm daemon ACTION` and prints the outcome; an error when a new daemon does not
/// answer, or a stopped one still does, names its log.
pub fn run(env: &crate::env::Env, action: Action) -> anyhow::Result<()> {
    let state = State::open(env)?;
    match action {
        Action::Start => start(&state),
        Action::Stop => stop(&state),
        Action::Status { json } => status(&state, json),
    }
}

/// `dockwarm watch`: the daemon in the foreground, its log on stderr.
pub fn watch(env: &crate::env::Env) -> anyhow::Result<()> {
    let state = State::open(env)?;
    server::run(state, server::Options::from_env(env))?;
    Ok(())
}

fn start(state: &State) -> anyhow::Result<()> {
    if let Some(r) = client::ping(state) {
        println!(
            "daemon: already running (pid {})",
            r.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        );
        return Ok(());
    }
    let spawned = spawn(state)?;
    let deadline = Instant::now() + START_WAIT;
    while Instant::now() < deadline {
        if let Some(r) = client::ping(state) {
            let pid = r.pid.unwrap_or(spawned);
            println!(
                "daemon: started (pid {pid}); log: {}",
                log_path(state).display()
            );
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let tail = std::fs::read_to_string(log_path(state))
        .unwrap_or_default()
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ");
    anyhow::bail!(
        "the daemon did not answer within {}s; its log ({}) ends: {tail}",
        START_WAIT.as_secs(),
        log_path(state).display()
    )
}

fn stop(state: &State) -> anyhow::Result<()> {
    match client::request(state, &Request::Stop, Duration::from_secs(2)) {
        Ok(_) => {}
        Err(ClientError::NotRunning) => {
            println!("daemon: not running");
            return Ok(());
        }
        Err(e @ ClientError::NoAnswer(_)) => match silent_pid(state) {
            Some(pid) => anyhow::bail!(
                "the daemon (pid {pid}) does not answer; `kill {pid}` stops it (its log: {})",
                log_path(state).display()
            ),
            None => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if client::ping(state).is_none() {
            println!("daemon: stopped (a build in progress finishes on its own)");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!(
        "the daemon acknowledged the stop but still answers after {}s",
        STOP_WAIT.as_secs()
    )
}

/// The daemon's own status, or None when none answers.
pub fn query(state: &State) -> Option<DaemonStatus> {
    client::request(state, &Request::Status, Duration::from_secs(2))
        .ok()
        .and_then(|r| r.status)
}

fn status(state: &State, json: bool) -> anyhow::Result<()> {
    let status = query(state);
    if json {
        return super::print_json(&serde_json::json!({
            "running": status.is_some(),
            "socket": daemon::socket_path(state),
            "log": log_path(state),
            "daemon": status,
        }));
    }
    let Some(s) = status else {
        match silent_pid(state) {
            Some(pid) => println!(
                "daemon: pid {pid} is alive but does not answer; its log: {} (`kill {pid}` stops it)",
                log_path(state).display()
            ),
            None => {
                println!("daemon: not running (`dockwarm daemon start`, or any hook starts it)")
            }
        }
        return Ok(());
    };
    println!(
        "daemon: running (pid {}), {} workspace(s), {} watched dir(s), engine {}{}",
        s.pid,
        s.workspaces,
        s.watched_dirs,
        s.engine,
        s.engine_endpoint
            .as_ref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default()
    );
    if let Some(e) = &s.engine_error {
        println!("  engine error: {e}");
    }
    let jobs = [("building", &s.running), ("queued", &s.queued)];
    for (what, list) in jobs {
        for j in list {
            println!(
                "  {what:<8} {}/{} ({}) for {} workspace(s)",
                j.project,
                j.image,
                short(&j.digest),
                j.workspaces.len()
            );
        }
    }
    for f in &s.failed {
        println!(
            "  failed   {} {}: {}",
            f.workspace.display(),
            f.image,
            f.error
        );
    }
    println!("  log: {}", log_path(state).display());
    Ok(())
}

/// The pid of a daemon that did not answer but whose process is alive (its pid file names a
/// live process): a jammed daemon is not "not running".
fn silent_pid(state: &State) -> Option<u32> {
    let pid = daemon::read_pid(state)?;
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists (and
    // is ours to signal). No memory is involved.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    alive.then_some(pid)
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
