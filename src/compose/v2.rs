//! `docker compose config --format json`, and its answers cached in the state directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::state::{self, State};

/// Why compose gave no model: missing (the own reader may stand in) or refusing (it may not).
pub enum V2Error {
    /// No compose v2 here (no `docker`, or no compose plugin): the own reader answers.
    Absent(String),
    /// Compose refused the project; its message.
    Rejected(String),
}

/// Runs compose in `root` with exactly `env`, as the user's `docker compose build` would.
///
/// `docker compose` is the docker CLI starting its compose plugin: about 40 ms of the CLI's
/// own start-up before compose's 20 ms (measured here), on the path of every new workspace's
/// first plan. Compose run standalone gives the same answer (byte for byte, errors and exit
/// codes included, on the 39 projects of the compose corpus), so the plugin is run directly
/// when it is where the CLI looks for it; otherwise, and with `DOCKWARM_DOCKER` (a docker
/// CLI named explicitly), through the CLI.
pub fn config(root: &Path, env: &BTreeMap<String, String>) -> Result<String, V2Error> {
    let docker = env
        .get("DOCKWARM_DOCKER")
        .cloned()
        .unwrap_or_else(|| "docker".into());
    let plugin = if env.contains_key("DOCKWARM_DOCKER") {
        None
    } else {
        compose_plugin(env)
    };
    let mut command = match &plugin {
        Some(plugin) => {
            let mut c = Command::new(plugin);
            c.args(["config", "--format", "json"]);
            c
        }
        None => {
            let mut c = Command::new(&docker);
            c.args(["compose", "config", "--format", "json"]);
            c
        }
    };
    let out = command
        .current_dir(root)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| V2Error::Absent(format!("{docker}: {e}")))?;
    if out.status.success() {
        return String::from_utf8(out.stdout)
            .map_err(|_| V2Error::Rejected("output is not UTF-8".into()));
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // The docker CLI without the compose plugin, or an old one without `--format`.
    let absent = stderr.contains("is not a docker command")
        || stderr.contains("unknown shorthand flag")
        || stderr.contains("unknown flag: --format");
    if absent {
        return Err(V2Error::Absent(stderr));
    }
    Err(V2Error::Rejected(stderr))
}

/// The compose CLI plugin the docker CLI would run: the first `docker-compose` in the user's
/// `cli-plugins` (under `DOCKER_CONFIG`, else `~/.docker`), then the system plugin directories,
/// in the CLI's order.
fn compose_plugin(env: &BTreeMap<String, String>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let user = env
        .get("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".docker")));
    let dirs = user.map(|d| d.join("cli-plugins")).into_iter().chain(
        [
            "/usr/local/lib/docker/cli-plugins",
            "/usr/local/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/libexec/docker/cli-plugins",
        ]
        .map(std::path::PathBuf::from),
    );
    dirs.map(|d| d.join("docker-compose")).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn path(state: &State, key: &str) -> Option<std::path::PathBuf> {
    state
        .dir("compose")
        .ok()
        .map(|d| d.join(format!("{key}.json")))
}

/// Compose's answer for `key`, if it was cached.
pub fn cached(state: &State, key: &str) -> Option<Value> {
    let text = std::fs::read_to_string(path(state, key)?).ok()?;
    serde_json::from_str(&text).ok()
}

/// Answers older than this are removed when a new one is stored (each is a few kB; a key
/// changes with every edit of a compose or env file).
const KEEP: std::time::Duration = std::time::Duration::from_secs(14 * 24 * 3600);

/// Caches compose's answer; a failure to write only costs the next run a compose process.
pub fn store(state: &State, key: &str, text: &str) {
    let Some(p) = path(state, key) else { return };
    let _ = state::write_atomic(&p, text.as_bytes());
    let Some(dir) = p.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > KEEP);
        if old && entry.path().extension().is_some_and(|e| e == "json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
