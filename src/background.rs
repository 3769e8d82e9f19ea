//! Handing work to the background: a detached `dockwarm` process whose output goes to the
//! state directory, so hooks and `init` return at once and never wait for the engine.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::state::{State, StateError};

/// Starts `dockwarm ARGS` in `dir`, detached from this process's terminal and process group.
/// Returns the child's pid.
pub fn spawn(state: &State, dir: &Path, args: &[&str]) -> Result<u32, StateError> {
    spawn_logged(state, dir, args, "background.log")
}

/// Like [`spawn`], with the output going to `<state>/logs/<log_name>`; a log past 1 MiB is
/// moved to `<log_name>.1` first, so a long-lived daemon's log stays bounded.
pub fn spawn_logged(
    state: &State,
    dir: &Path,
    args: &[&str],
    log_name: &str,
) -> Result<u32, StateError> {
    Ok(spawn_child(state, dir, args, log_name)?.id())
}

/// Like [`spawn_logged`], keeping the child, so the caller can see whether it died at once.
pub fn spawn_child(
    state: &State,
    dir: &Path,
    args: &[&str],
    log_name: &str,
) -> Result<std::process::Child, StateError> {
    use std::os::unix::process::CommandExt;
    let io = |source: std::io::Error| StateError::Io {
        path: state.root().display().to_string(),
        source,
    };
    let exe = std::env::current_exe().map_err(io)?;
    let log_path = state.dir("logs")?.join(log_name);
    if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > 1 << 20) {
        let _ = std::fs::rename(&log_path, log_path.with_extension("log.1"));
    }
    let log = crate::state::open_private_append(&log_path).map_err(io)?;
    let child = Command::new(exe)
        .args(args)
        .current_dir(dir)
        // A hook's git environment would point git calls at the wrong place later on.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("DOCKWARM_HOOK_RUNNING")
        .env("DOCKWARM_BACKGROUND", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the terminal that started it does not stop it.
        .process_group(0)
        .spawn()
        .map_err(io)?;
    Ok(child)
}

/// Where background runs write.
pub fn log_path(state: &State) -> std::path::PathBuf {
    state.root().join("logs").join("background.log")
}
