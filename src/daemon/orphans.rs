//! Builds a previous daemon left running: after a `kill -9`, its child
//! `dockwarm prebuild --full` goes on in its own process group, and the next daemon, which
//! derives what is owed from disk, would otherwise start a second build of the same workspace
//! beside it.
//!
//! Every `prebuild --full` holds the workspace's build lock (see [`lock_name`]) for its whole
//! run, so a daemon waits on that lock before starting its own child for the workspace: the
//! orphan finishes (the kernel drops its lock however it ends) and the daemon's child then finds
//! the work done, or does what is left. Waiting polls `try_lock` rather than blocking a thread,
//! so the daemon's loop and its other jobs go on meanwhile.

use std::path::Path;
use std::time::Duration;

use crate::state::{LockGuard, State, StateError};

/// The lock a full prebuild of `workspace` holds while it runs.
pub fn lock_name(workspace: &Path) -> String {
    format!("workspace-build-{}", crate::registry::id(workspace))
}

/// Takes the workspace's build lock for this process, waiting (and saying so, unless `quiet`)
/// while another process holds it: one full build of a workspace at a time, whoever started it.
pub fn hold(state: &State, workspace: &Path, quiet: bool) -> Result<LockGuard, StateError> {
    let name = lock_name(workspace);
    if let Some(guard) = state.try_lock(&name)? {
        return Ok(guard);
    }
    if !quiet {
        eprintln!(
            "another dockwarm is building {}; waiting for it",
            workspace.display()
        );
    }
    state.lock(&name)
}

/// Whether some process (an orphaned build) holds the workspace's build lock now.
pub fn busy(state: &State, workspace: &Path) -> bool {
    matches!(state.try_lock(&lock_name(workspace)), Ok(None))
}

/// Waits until no process holds the workspace's build lock; returns whether it had to wait.
/// Polls, so the caller's runtime stays free.
pub async fn wait_for(state: &State, workspace: &Path) -> bool {
    let mut waited = false;
    while busy(state, workspace) {
        waited = true;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    waited
}
