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
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Plans the workspace (reusing the stored plan while its stamp holds), compares each image's
/// inputs digest with the registry's and records the new ones. `register`: add the workspace
/// to the registry if it is not there (hooks and `init` do; the daemon only looks at
/// registered ones). Writes nothing when nothing changed.
pub fn observe(
    state: &State,
    ws: &Workspace,
    dialect: Dialect,
    register: bool,
) -> Result<Observation, ObserveError> {
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
    if newly_registered && register {
        registry::put(state, &new_record(ws, &plan.config))?;
    }
    let mut unbuilt = Vec::new();
    if changed.is_empty() {
        for (image, digest) in &digests {
            if seen(image).and_then(ImageSeen::built) != Some(digest.as_str()) {
                unbuilt.push((image.clone(), digest.clone()));
            }
        }
    } else {
        registry::update(state, &ws.root, |w| {
            for (image, digest) in &digests {
                let seen = w.images.entry(image.clone()).or_default();
                if seen.inputs_digest != *digest {
                    seen.set_inputs_digest(digest);
                }
                if seen.built() != Some(digest.as_str()) {
                    unbuilt.push((image.clone(), digest.clone()));
                }
            }
        })?;
    }
    Ok(Observation {
        plan,
        changed,
        unbuilt,
        newly_registered,
    })
}

fn new_record(ws: &Workspace, config: &Config) -> registry::Workspace {
    registry::Workspace {
        name: registry::workspace_name(&ws.root),
        path: ws.root.clone(),
        project: config.project.value.clone(),
        compose_project: config.compose_project.value.clone(),
        registered_at: now_secs(),
        images: Default::default(),
    }
}
