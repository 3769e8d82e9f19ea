//! Talking to the daemon from hooks and commands, with std's blocking sockets: a hook must not
//! pay for starting an async runtime, and every call is bounded by a timeout so a wedged daemon
//! never holds git. [`hand_off`] is how a hook or `init` gives the daemon a change, starting a
//! daemon when none answers (or a plain background prebuild when the daemon is turned off).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{Request, Response};
use crate::state::{State, StateError};

/// The daemon's log file name, under `<state>/logs/`.
pub const LOG_NAME: &str = "daemon.log";

/// Why a hook or command could not reach the daemon, or get an answer or a start out of it;
/// each says what the user can do next.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket: no daemon runs for this state directory.
    #[error("no dockwarm daemon is running (start one with `dockwarm daemon start`)")]
    NotRunning,
    /// The socket took the connection but no answer came in time, or it was not one we could
    /// read; the text says which. A jammed daemon, not a missing one.
    #[error("the dockwarm daemon did not answer: {0}")]
    NoAnswer(String),
    /// The daemon answered and turned the request down, with its reason.
    #[error("the dockwarm daemon refused: {0}")]
    Refused(String),
    /// A daemon this process started died before answering; `said` is what it logged.
    #[error("the background prebuild could not start: the daemon exited at once: {said} (log: {})", log.display())]
    ExitedAtOnce {
        /// What the daemon logged after this process started it, lines joined with " | ".
        said: String,
        /// The daemon's log, for the rest of what it said.
        log: PathBuf,
    },
    /// The state dir or the child process could not be set up.
    #[error("the background prebuild could not start: {0}")]
    Spawn(#[from] StateError),
}

fn connect(state: &State, timeout: Duration) -> Result<UnixStream, ClientError> {
    // A unix socket connects at once or fails at once (no listener: ECONNREFUSED or ENOENT), so
    // only reads and writes need the timeout.
    let stream =
        UnixStream::connect(super::socket_path(state)).map_err(|_| ClientError::NotRunning)?;
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.set_read_timeout(Some(timeout));
    Ok(stream)
}

fn line(request: &Request) -> Vec<u8> {
    let mut text = serde_json::to_vec(request).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Sends a request and waits (at most `timeout`) for its answer.
pub fn request(
    state: &State,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let mut stream = connect(state, timeout)?;
    stream
        .write_all(&line(request))
        .map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    if answer.trim().is_empty() {
        return Err(ClientError::NoAnswer("the connection closed".into()));
    }
    let response: Response =
        serde_json::from_str(&answer).map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    if !response.ok {
        return Err(ClientError::Refused(
            response.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    Ok(response)
}

/// Hands a request to the daemon without waiting for its answer: what hooks use, since the
/// daemon reads every accepted connection and the hook's budget is a few milliseconds. Ok
/// means the request is in the daemon's socket buffer.
pub fn send(state: &State, request: &Request) -> Result<(), ClientError> {
    let mut stream = connect(state, Duration::from_millis(20))?;
    stream
        .write_all(&line(request))
        .map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Whether a daemon answers on the socket.
pub fn ping(state: &State) -> Option<Response> {
    request(state, &Request::Ping, Duration::from_millis(500)).ok()
}

/// The daemon's log, under `<state>/logs/`.
pub fn log_path(state: &State) -> std::path::PathBuf {
    state.root().join("logs").join(LOG_NAME)
}

/// Starts a detached daemon (`dockwarm watch`); returns its pid. A second daemon started
/// while one runs exits at once on the lock, so racing starters are harmless.
pub fn spawn(state: &State) -> Result<u32, ClientError> {
    Ok(spawn_child(state)?.id())
}

fn spawn_child(state: &State) -> Result<std::process::Child, ClientError> {
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
pub fn start_confirmed(state: &State) -> Result<Started, ClientError> {
    let log = log_path(state);
    let logged_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut child = spawn_child(state)?;
    let deadline = Instant::now() + CONFIRM_WAIT;
    loop {
        if let Some(r) = ping(state) {
            return Ok(Started::Answering(r.pid.unwrap_or(child.id())));
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Lost the lock to a daemon that is only now binding its socket?
            std::thread::sleep(Duration::from_millis(50));
            if let Some(r) = ping(state) {
                return Ok(Started::Answering(r.pid.unwrap_or(0)));
            }
            let said = std::fs::read(&log)
                .ok()
                .and_then(|b| b.get(logged_before as usize..).map(<[u8]>::to_vec))
                .map(|b| String::from_utf8_lossy(&b).trim().replace('\n', " | "))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| format!("it exited ({status}) without a word"));
            return Err(ClientError::ExitedAtOnce { said, log });
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

/// Whether the user turned the daemon off (`DOCKWARM_DAEMON=0` in `env`): hooks and `init`
/// then start a background prebuild per change, as before the daemon existed.
pub fn disabled(env: &crate::env::Env) -> bool {
    env.daemon_disabled()
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
pub fn hand_off(
    state: &State,
    workspace: &Path,
    images: &[String],
) -> Result<HandedTo, ClientError> {
    if disabled(state.env()) {
        let mut args = vec!["prebuild", "--full", "--quiet"];
        args.extend(images.iter().map(String::as_str));
        return Ok(HandedTo::Prebuild(crate::background::spawn(
            state, workspace, &args,
        )?));
    }
    let change = if images.is_empty() {
        Request::Register {
            path: workspace.to_path_buf(),
        }
    } else {
        Request::Changed {
            path: workspace.to_path_buf(),
            images: images.to_vec(),
        }
    };
    match request(state, &change, ACK_WAIT) {
        Ok(_) => Ok(HandedTo::Daemon),
        Err(ClientError::NotRunning) => match start_confirmed(state)? {
            Started::Answering(pid) => Ok(HandedTo::NewDaemon(pid)),
            Started::Silent(pid) => Ok(HandedTo::NewDaemonSilent(pid)),
        },
        Err(ClientError::NoAnswer(_)) => Ok(HandedTo::DaemonSilent(super::read_pid(state))),
        Err(e) => Err(e),
    }
}
