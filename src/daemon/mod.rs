//! The per-user daemon: watches every registered workspace's dependency inputs and keeps their
//! prebuilds current, one build per fingerprint for all workspaces.
//!
//! One daemon per state directory, guaranteed by the `daemon` lock (flock, released by the
//! kernel however the process ends, so a `kill -9` never blocks the next start) rather than by
//! a pid file, which can name a dead or recycled process. The socket `<state>/daemon.sock` is
//! how hooks and commands reach it; the protocol is in [`protocol`] and
//! `docs/daemon-protocol.md`.

pub mod base_images;
pub mod client;
pub mod engine_env;
pub mod maintenance;
pub mod orphans;
pub mod protocol;
pub mod queue;
pub mod server;
pub mod watcher;

use std::path::PathBuf;

use crate::state::{State, StateError};

/// Why the daemon could not start or keep running; returned by [`server::run`].
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon holds the state directory's `daemon` lock; one per state directory.
    #[error("a dockwarm daemon is already running{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// The pid the other daemon wrote, if it is readable; informative only, the lock decides.
        pid: Option<u32>,
    },
    /// The state directory (its lock, pid file) could not be used.
    #[error(transparent)]
    State(#[from] StateError),
    /// A system call the daemon needs at start failed: the runtime, the socket, its own path.
    #[error("cannot {what}: {source}")]
    Io {
        /// What the daemon was doing, worded to follow "cannot": "start the runtime", "listen on"
        /// and the socket path.
        what: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The OS watcher could not be set up; on Linux usually the inotify limits, which the message
    /// says how to raise.
    #[error(
        "cannot watch files: {0}; on Linux, raise fs.inotify.max_user_watches / max_user_instances"
    )]
    Watch(#[from] notify::Error),
}

/// The socket hooks and commands reach the daemon on, `<state>/daemon.sock`; the daemon replaces
/// a stale one only once it holds the lock.
pub fn socket_path(state: &State) -> PathBuf {
    state.root().join("daemon.sock")
}

/// Where the running daemon writes its pid, `<state>/daemon.pid`, so `status`, `stop` and a
/// hook can name a daemon that does not answer.
pub fn pid_path(state: &State) -> PathBuf {
    state.root().join("daemon.pid")
}

/// The pid the last daemon wrote; informative only (the lock decides who runs).
pub fn read_pid(state: &State) -> Option<u32> {
    std::fs::read_to_string(pid_path(state))
        .ok()?
        .trim()
        .parse()
        .ok()
}
