//! The two ways dockwarm asks BuildKit for a build, behind one small interface.
//!
//! - `buildx`: `docker buildx build`, exactly what compose v2 runs on users' machines, so the
//!   context transfer, `.dockerignore` handling and cache keys are the user's own, on whatever
//!   builder the user has selected.
//! - `bollard`: the engine's `/build` endpoint with BuildKit and a session, from a context tar
//!   dockwarm writes itself; needs no CLI at all.
//!
//! `auto` picks buildx when `docker buildx version` answers.
//!
//! # A workspace's image and its dependency image: the workspace's first
//!
//! When both are owed (a dependency change under `prebuild --full`), build the workspace's image
//! first and the dependency image right after it. What an export costs on the engine's own
//! BuildKit (buildx's `docker` driver, and the `/build` endpoint) is registering each new layer
//! in the engine's layer store (moby's `EnsureLayer`): the graph driver's `Diff` of the layer
//! against its parent. Drivers without a native diff (fuse-overlayfs, vfs...) take moby's
//! naive diff, which walks the whole of both trees, however small the layer, then sleeps to
//! the next full second. Measured with the bench fixture (14k files, a 135 MB venv) on 20.10
//! with fuse-overlayfs: 2-3.5 s to register a 2 KB `COPY . .` layer.
//! - One export registers a chain's new layers concurrently (moby diffs each layer while its
//!   parent's registration runs); two builds register the dependency layers, then the
//!   source layer after them, one export each.
//! - The build after the first finds its steps CACHED and its layers registered, so it costs a
//!   solve and no diff (0.5 s here): build the one that holds more layers first.
//! - The dependency image's inline cache (`--cache-to type=inline`, `BUILDKIT_INLINE_CACHE`)
//!   costs no compression there: moby's worker answers it with the same `EnsureLayer`.

mod bollard_backend;
mod buildx;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::Backend;
use crate::engine::Engine;
use crate::progress::BuildLog;

/// One build: a Dockerfile (or a generated prefix of one) in a context, tagged and labelled.
pub struct Request<'a> {
    pub context_dir: &'a Path,
    /// The user's Dockerfile: its `.dockerignore` companion and directory matter.
    pub dockerfile_path: &'a Path,
    /// When set, build this text instead of the file (a truncated dependency stage).
    pub dockerfile_text: Option<&'a str>,
    pub target: Option<&'a str>,
    /// The network RUN steps use (`host`); part of their cache keys, so it must match the
    /// user's build.
    pub network: Option<&'a str>,
    /// Images whose inline cache metadata the build may reuse (after `docker builder prune`).
    pub cache_from: &'a [String],
    /// Embed cache metadata in the image, so it can serve as `cache_from` later.
    pub inline_cache: bool,
    pub args: &'a BTreeMap<String, String>,
    /// Named build contexts (compose's local `additional_contexts`), absolute directories.
    pub named_contexts: &'a BTreeMap<String, PathBuf>,
    pub labels: &'a BTreeMap<String, String>,
    pub tags: &'a [String],
    /// A directory the backend may write generated files to.
    pub scratch_dir: &'a Path,
}

#[derive(Debug, thiserror::Error)]
#[error("{}{message}", step.as_ref().map(|s| format!("step `{s}` failed: ")).unwrap_or_default())]
pub struct BuildFailure {
    pub step: Option<String>,
    pub message: String,
    pub tail: Vec<String>,
}

impl BuildFailure {
    /// A failure before or outside any build step.
    pub fn plain(message: impl Into<String>) -> BuildFailure {
        BuildFailure {
            step: None,
            message: message.into(),
            tail: Vec::new(),
        }
    }

    fn from_log(log: &BuildLog, message: impl Into<String>) -> BuildFailure {
        BuildFailure {
            step: log.failed_step(),
            message: message.into(),
            tail: log.tail(),
        }
    }
}

pub enum Builder {
    Buildx { docker: PathBuf },
    Bollard(Engine),
}

impl Builder {
    /// Resolves `auto` to a concrete backend.
    pub async fn choose(kind: Backend, engine: &Engine) -> Result<Builder, BuildFailure> {
        match kind {
            Backend::Bollard => Ok(Builder::Bollard(engine.clone())),
            Backend::Buildx => match buildx::find().await {
                Some(docker) => Ok(Builder::Buildx { docker }),
                None => Err(BuildFailure::plain("backend `buildx` chosen but `docker buildx version` does not answer; install the buildx plugin or set backend = \"bollard\"")),
            },
            Backend::Auto => match buildx::find().await {
                Some(docker) => Ok(Builder::Buildx { docker }),
                // API 1.53 deprecates the /session endpoint bollard's BuildKit builds need.
                None if engine.api_minor() >= 53 => Err(BuildFailure::plain(format!(
                        "no `docker buildx`, and engine API {} deprecates the /session endpoint the bollard backend needs; install the buildx plugin",
                        engine.api_version()
                    ))),
                None => Ok(Builder::Bollard(engine.clone())),
            },
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Builder::Buildx { .. } => "buildx",
            Builder::Bollard(_) => "bollard",
        }
    }

    /// Whether builds run in the engine's own BuildKit and see its image store (buildx's
    /// `docker` driver, and the `/build` endpoint). Other builders (`docker-container`, remote
    /// ones) keep their own cache and take `--cache-from` only from a registry.
    pub async fn uses_engine_store(&self) -> bool {
        match self {
            Builder::Buildx { docker } => {
                buildx::driver(docker).await.is_none_or(|d| d == "docker")
            }
            Builder::Bollard(_) => true,
        }
    }

    pub async fn build(&self, req: &Request<'_>, log: &mut BuildLog) -> Result<(), BuildFailure> {
        match self {
            Builder::Buildx { docker } => buildx::build(docker, req, log).await,
            Builder::Bollard(engine) => bollard_backend::build(engine, req, log).await,
        }
    }
}

pub use buildx::version as buildx_version;
