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

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("a dockwarm daemon is already running{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning { pid: Option<u32> },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot watch files: {0}; on Linux, raise fs.inotify.max_user_watches / max_user_instances"
    )]
    Watch(#[from] notify::Error),
}

pub fn socket_path(state: &State) -> PathBuf {
    state.root().join("daemon.sock")
}

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
