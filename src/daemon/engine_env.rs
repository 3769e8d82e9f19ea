//! Which engine the daemon builds a workspace on: the one its user's shell names (recorded in
//! the registry by `init` and the hooks, see [`EngineEnv`]), not the one the daemon's own
//! environment named when some hook happened to start it. And what the daemon last saw of an
//! engine, for `status`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::{self, Engine, EngineEnv};
use crate::env::Env;
use crate::state::State;

/// The last engine check: where, and what went wrong (None: it answered).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The endpoint that was tried (or the `DOCKER_HOST` that did not resolve), as `status`
    /// shows it.
    pub endpoint: String,
    /// Why the engine did not answer there; None: it did.
    pub error: Option<String>,
}

// The daemon's loop owns everything else; this is written by its build tasks and read by
// `status`, so a lock rather than a message keeps those functions' signatures as they are.
static LAST: Mutex<Option<Seen>> = Mutex::new(None);

/// The engine variables for builds of `workspace`: those recorded for it, else the daemon's.
pub fn for_workspace(state: &State, workspace: &Path) -> EngineEnv {
    crate::registry::get(state, workspace)
        .and_then(|w| w.engine)
        .unwrap_or_else(|| EngineEnv::from_env(state.env()))
}

/// Sets (or removes) the engine variables on a child's command.
pub fn apply(env: &EngineEnv, cmd: &mut tokio::process::Command) {
    for (name, value) in env.vars() {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
}

/// Whether the engine `env` names answers now (`~/.docker` from `home`'s `HOME`); remembers
/// where it looked and why it failed.
pub async fn answers(env: &EngineEnv, home: &Env) -> bool {
    let (endpoint, result) = match engine::resolve_endpoint_in(env, home) {
        Err(e) => (
            env.docker_host.clone().unwrap_or_default(),
            Err(e.to_string()),
        ),
        Ok(endpoint) => {
            let shown = endpoint.to_string();
            let result =
                match tokio::time::timeout(Duration::from_secs(6), Engine::connect_to(endpoint))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer within 6 s".to_string()),
                };
            (shown, result)
        }
    };
    let ok = result.is_ok();
    if let Ok(mut last) = LAST.lock() {
        *last = Some(Seen {
            endpoint,
            error: result.err(),
        });
    }
    ok
}

/// The last check's endpoint and error, if one ran.
pub fn last() -> Option<Seen> {
    LAST.lock().ok().and_then(|l| l.clone())
}
