//! `dockwarm daemon start|stop|status` and `dockwarm watch`, and the hand-off that hooks and
//! `init` use to give the daemon a change.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::client::{self, ClientError};
use crate::daemon::protocol::{DaemonStatus, Request};
use crate::daemon::{self, server};
use crate::state::State;

pub enum Action {
    Start,
    Stop,
    Status { json: bool },
}

/// The daemon's log, under `<state>/logs/`.
pub const LOG_NAME: &str = "daemon.log";

/// How long `daemon start` waits for a new daemon to answer.
const START_WAIT: Duration = Duration::from_secs(5);
/// How long `daemon stop` waits for the daemon to go.
const STOP_WAIT: Duration = Duration::from_secs(10);

pub fn run(action: Action) -> anyhow::Result<()> {
    let state = State::open()?;
    match action {
        Action::Start => start(&state),
        Action::Stop => stop(&state),
        Action::Status { json } => status(&state, json),
    }
}

/// `dockwarm watch`: the daemon in the foreground, its log on stderr.
pub fn watch() -> anyhow::Result<()> {
    let state = State::open()?;
    server::run(state, server::Options::from_env())?;
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

pub fn log_path(state: &State) -> std::path::PathBuf {
    state.root().join("logs").join(LOG_NAME)
}

/// Starts a detached daemon (`dockwarm watch`); returns its pid. A second daemon started
/// while one runs exits at once on the lock, so racing starters are harmless.
pub fn spawn(state: &State) -> anyhow::Result<u32> {
    Ok(spawn_child(state)?.id())
}

fn spawn_child(state: &State) -> anyhow::Result<std::process::Child> {
    let dir = state.root().to_path_buf();
    state.ensure_root()?;
    Ok(crate::background::spawn_child(
        state,
        &dir,
        &["watch"],
        LOG_NAME,
    )?)
}

/// How long a hook or `init` waits for a daemon it started to answer, or to die.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);
/// How long a hook or `init` waits for the running daemon to acknowledge a change. The daemon
/// answers `changed` after evaluating the workspace on its loop (tens of ms; more on a loaded
/// machine), so this is generous; a jammed daemon costs the hook this long, once.
const ACK_WAIT: Duration = Duration::from_millis(1000);

/// Starts a daemon and waits until one answers (ours, or one a concurrent starter won the
/// lock for: its pid is the one reported) or ours has died, in which case the error quotes
/// what it logged. Reporting "started" for a daemon that exited on its first line misled.
pub fn start_confirmed(state: &State) -> anyhow::Result<Started> {
    let log = log_path(state);
    let logged_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut child = spawn_child(state)?;
    let deadline = Instant::now() + CONFIRM_WAIT;
    loop {
        if let Some(r) = client::ping(state) {
            return Ok(Started::Answering(r.pid.unwrap_or(child.id())));
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Lost the lock to a daemon that is only now binding its socket?
            std::thread::sleep(Duration::from_millis(50));
            if let Some(r) = client::ping(state) {
                return Ok(Started::Answering(r.pid.unwrap_or(0)));
            }
            let said = std::fs::read(&log)
                .ok()
                .and_then(|b| b.get(logged_before as usize..).map(<[u8]>::to_vec))
                .map(|b| String::from_utf8_lossy(&b).trim().replace('\n', " | "))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("it exited ({status}) without a word"));
            anyhow::bail!("the daemon exited at once: {said} (log: {})", log.display());
        }
        if Instant::now() >= deadline {
            return Ok(Started::Silent(child.id()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A daemon [`start_confirmed`] saw.
pub enum Started {
    /// It answers (pid of the daemon that answered).
    Answering(u32),
    /// Ours (pid) is alive but did not answer within the wait.
    Silent(u32),
}

/// Whether the user turned the daemon off (`DOCKWARM_DAEMON=0`): hooks and `init` then start
/// a background prebuild per change, as before the daemon existed.
pub fn disabled() -> bool {
    std::env::var("DOCKWARM_DAEMON").is_ok_and(|v| v == "0" || v == "off")
}

/// Who took a change.
pub enum HandedTo {
    /// The running daemon, which acknowledged it.
    Daemon,
    /// The running daemon's socket took it, but the daemon did not acknowledge it in time:
    /// busy, or jammed (pid as last written, if known).
    DaemonSilent(Option<u32>),
    /// A daemon just started and answering (pid); it finds the change when it scans the
    /// registry.
    NewDaemon(u32),
    /// A daemon just started (pid), alive but not answering yet.
    NewDaemonSilent(u32),
    /// A background prebuild (pid), the daemon being off.
    Prebuild(u32),
}

impl HandedTo {
    /// What a hook or `init` tells the user, after "prebuild: " or the hook's "dockwarm: …; ".
    pub fn describe(&self, state: &State) -> String {
        let log = log_path(state);
        match self {
            HandedTo::Daemon => "prebuilding in the background (`dockwarm status`)".into(),
            HandedTo::DaemonSilent(pid) => format!(
                "handed to the daemon{}, which did not acknowledge it within {} ms, so nothing may build until it does; see `dockwarm daemon status` and {}",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                ACK_WAIT.as_millis(),
                log.display()
            ),
            HandedTo::NewDaemon(pid) => format!(
                "started the daemon (pid {pid}), which prebuilds in the background (`dockwarm status`)"
            ),
            HandedTo::NewDaemonSilent(pid) => format!(
                "started the daemon (pid {pid}), which has not answered yet; see `dockwarm daemon status` and {}",
                log.display()
            ),
            HandedTo::Prebuild(pid) => format!(
                "started in the background (pid {pid}); `dockwarm status` or {}",
                crate::background::log_path(state).display()
            ),
        }
    }
}

/// Hands a workspace's change to the daemon without waiting for it: a message when it answers,
/// else a new daemon (which scans every registered workspace on start, this one included: the
/// caller has written the registry first). `images` empty: every image, or a new workspace.
pub fn hand_off(state: &State, workspace: &Path, images: &[String]) -> anyhow::Result<HandedTo> {
    if disabled() {
        let mut args = vec!["prebuild", "--full", "--quiet"];
        args.extend(images.iter().map(String::as_str));
        return Ok(HandedTo::Prebuild(crate::background::spawn(
            state, workspace, &args,
        )?));
    }
    let request = if images.is_empty() {
        Request::Register {
            path: workspace.to_path_buf(),
        }
    } else {
        Request::Changed {
            path: workspace.to_path_buf(),
            images: images.to_vec(),
        }
    };
    match client::request(state, &request, ACK_WAIT) {
        Ok(_) => Ok(HandedTo::Daemon),
        Err(ClientError::NotRunning) => {
            match start_confirmed(state)
                .map_err(|e| e.context("the background prebuild could not start"))?
            {
                Started::Answering(pid) => Ok(HandedTo::NewDaemon(pid)),
                Started::Silent(pid) => Ok(HandedTo::NewDaemonSilent(pid)),
            }
        }
        Err(ClientError::NoAnswer(_)) => Ok(HandedTo::DaemonSilent(daemon::read_pid(state))),
        Err(e @ ClientError::Refused(_)) => Err(e.into()),
    }
}
