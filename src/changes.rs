//! What changed in a workspace since dockwarm last looked: the one change check the git hooks
//! and the daemon's evaluation share.
//!
//! Both ask the same question — which images' dependency inputs differ from what was last
//! recorded for this workspace, and which current inputs were never built here — and record
//! the answer in the registry. The plan behind the answer is reused from the state directory
//! while nothing it read has changed (see [`crate::plan`]), so on a checkout that touched no
//! input this costs a few `stat`s and two small file reads.

use crate::config::Config;
use crate::ignore::Dialect;
use crate::plan::{PlanError, WorkspacePlan};
use crate::registry::{self, ImageSeen};
use crate::state::{now_secs, State, StateError};
use crate::workspace::Workspace;

/// What [`observe`] found.
#[derive(Debug)]
pub struct Observation {
    /// The workspace's plan, loaded once here and passed on to whatever builds or reports.
    pub plan: WorkspacePlan,
    /// Images whose inputs digest differs from the one last recorded (all, for a workspace
    /// seen for the first time).
    pub changed: Vec<String>,
    /// (image, inputs digest) of the images whose current inputs were never built for this
    /// workspace: what a build is owed for.
    pub unbuilt: Vec<(String, String)>,
    /// The workspace was not registered before this look.
    pub newly_registered: bool,
}

/// Why a look failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The workspace could not be planned: `dockwarm.toml` or the compose file is wrong, or
    /// there is no image to prebuild.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The registry in the state directory could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// `dockwarm archive` ran here: the workspace is left alone until `dockwarm init`.
    #[error("{path} was archived; run `dockwarm init` there to keep it warm again")]
    Archived {
        /// The workspace's root, for the message.
        path: String,
    },
}

/// Who looks, which decides what a look writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// A git hook: registers a new workspace and records what it saw, which is what it tells
    /// the user about.
    Hook,
    /// The daemon (after a change it saw, or a job): what is owed now, recording nothing. The
    /// daemon's sightings are not the user's: a hook that comes after a checkout must still
    /// tell of a change the daemon noticed first.
    Daemon,
}

/// Plans the workspace (reusing the stored plan while its stamp holds), compares each image's
/// inputs digest with the registry's and, as `look` says, records the new ones. Writes nothing
/// when nothing changed.
pub fn observe(
    state: &State,
    ws: &Workspace,
    dialect: Dialect,
    look: Look,
) -> Result<Observation, ObserveError> {
    // The hooks are shared by every worktree: an archived one's next checkout must neither
    // register it again nor have its images tagged.
    if registry::is_archived(state, &ws.root) {
        return Err(ObserveError::Archived {
            path: ws.root.display().to_string(),
        });
    }
    let known = registry::get(state, &ws.root);
    let plan = WorkspacePlan::load(state, ws, dialect)?;
    let digests = plan.digests();
    let seen = |image: &str| known.as_ref().and_then(|k| k.images.get(image));
    let changed: Vec<String> = digests
        .iter()
        .filter(|(image, digest)| seen(image).map(|s| s.inputs_digest.as_str()) != Some(digest))
        .map(|(image, _)| image.clone())
        .collect();
    let newly_registered = known.is_none();
    if newly_registered && look == Look::Hook {
        registry::put(state, &new_record(state, ws, &plan.config))?;
    }
    // Only a hook writes, and only when something changed (its fast path writes nothing).
    let record = if changed.is_empty() || look == Look::Daemon {
        known
    } else {
        registry::update(state, &ws.root, |w| {
            // The engine this user's builds go to (see `daemon::engine_env`).
            w.engine = Some(crate::engine::EngineEnv::from_env(state.env()));
            for (image, digest) in &digests {
                let seen = w.images.entry(image.clone()).or_default();
                if seen.inputs_digest != *digest {
                    seen.set_inputs_digest(digest);
                }
            }
        })?
    };
    let unbuilt = digests
        .iter()
        .filter(|(image, digest)| {
            let seen = record.as_ref().and_then(|r| r.images.get(*image));
            seen.and_then(ImageSeen::built) != Some(digest.as_str())
        })
        .map(|(image, digest)| (image.clone(), digest.clone()))
        .collect();
    Ok(Observation {
        plan,
        changed,
        unbuilt,
        newly_registered,
    })
}

fn new_record(state: &State, ws: &Workspace, config: &Config) -> registry::Workspace {
    registry::Workspace {
        name: registry::workspace_name(state.env(), &ws.root),
        path: ws.root.clone(),
        project: config.project.value.clone(),
        compose_project: config.compose_project.value.clone(),
        registered_at: now_secs(),
        images: Default::default(),
        engine: Some(crate::engine::EngineEnv::from_env(state.env())),
    }
}
