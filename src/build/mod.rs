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
    /// The build context directory sent to BuildKit (the image's configured context).
    pub context_dir: &'a Path,
    /// The user's Dockerfile: its `.dockerignore` companion and directory matter.
    pub dockerfile_path: &'a Path,
    /// When set, build this text instead of the file (a truncated dependency stage).
    pub dockerfile_text: Option<&'a str>,
    /// The stage to stop at (`--target`): the dependency stage for a dependency build, the
    /// user's own target for the workspace's image.
    pub target: Option<&'a str>,
    /// The network RUN steps use (`host`); part of their cache keys, so it must match the
    /// user's build.
    pub network: Option<&'a str>,
    /// Images whose inline cache metadata the build may reuse (after `docker builder prune`).
    pub cache_from: &'a [String],
    /// Embed cache metadata in the image, so it can serve as `cache_from` later.
    pub inline_cache: bool,
    /// Build args, the user's own: they enter cache keys, so they must be what compose passes.
    pub args: &'a BTreeMap<String, String>,
    /// Named build contexts (compose's local `additional_contexts`), absolute directories.
    pub named_contexts: &'a BTreeMap<String, PathBuf>,
    /// Labels for the built image: `dev.dockwarm.managed` and the rest that let dockwarm
    /// find, account for and prune only what it made.
    pub labels: &'a BTreeMap<String, String>,
    /// The names the built image gets (a fingerprint tag, or the compose names).
    pub tags: &'a [String],
    /// A directory the backend may write generated files to.
    pub scratch_dir: &'a Path,
}

impl Request<'_> {
    /// The build as docker CLI arguments, after `docker`: every option the backend passes
    /// (`buildx build` for buildx; `build` with BuildKit for the engine's `/build` endpoint,
    /// which takes the same options as query parameters). buildx runs exactly these; the
    /// bollard backend logs them, so a build log's first line is a command the user can run.
    fn cli_args(&self, dockerfile: &Path, buildx: bool) -> Vec<std::ffi::OsString> {
        use std::ffi::OsString;
        let mut a: Vec<OsString> = Vec::new();
        let mut opt = |name: &str, value: OsString| {
            a.push(name.into());
            a.push(value);
        };
        opt("--file", dockerfile.into());
        if let Some(target) = self.target {
            opt("--target", target.into());
        }
        if let Some(network) = self.network {
            opt("--network", network.into());
        }
        for (k, v) in self.args {
            opt("--build-arg", format!("{k}={v}").into());
        }
        for (name, dir) in self.named_contexts {
            opt(
                "--build-context",
                format!("{name}={}", dir.display()).into(),
            );
        }
        if self.inline_cache {
            if buildx {
                opt("--cache-to", "type=inline".into());
            } else {
                opt("--build-arg", "BUILDKIT_INLINE_CACHE=1".into());
            }
        }
        for image in self.cache_from {
            let value = if buildx {
                format!("type=registry,ref={image}")
            } else {
                image.clone()
            };
            opt("--cache-from", value.into());
        }
        for (k, v) in self.labels {
            opt("--label", format!("{k}={v}").into());
        }
        for tag in self.tags {
            opt("--tag", tag.into());
        }
        let mut out: Vec<OsString> = if buildx {
            vec!["buildx".into(), "build".into(), "--progress=plain".into()]
        } else {
            vec!["build".into(), "--progress=plain".into()]
        };
        out.extend(a);
        if buildx {
            // `--load` makes builders other than the engine's own hand the image to the engine.
            out.push("--load".into());
        }
        out.push(self.context_dir.into());
        out
    }
}

/// A command line as a shell would take it back: words with anything but safe characters in
/// single quotes.
fn shell_line(program: &str, args: &[std::ffi::OsString]) -> String {
    let mut out = program.to_string();
    for arg in args {
        let word = arg.to_string_lossy();
        out.push(' ');
        let safe = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
        if safe {
            out.push_str(&word);
        } else {
            out.push('\'');
            out.push_str(&word.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

/// Why a build failed, in the terms the user needs to fix it: which step, what the builder
/// said, and the last lines of its output.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", step.as_ref().map(|s| format!("step `{s}` failed: ")).unwrap_or_default())]
pub struct BuildFailure {
    /// The Dockerfile step that failed; None when the failure came before or outside a step.
    pub step: Option<String>,
    /// The builder's own message (or dockwarm's, when no builder could run).
    pub message: String,
    /// The last lines of the build's output, which `prebuild` prints under the error so the
    /// user need not open the log.
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

/// A chosen build client, kept for a whole run so `auto` is resolved once.
pub enum Builder {
    /// `docker buildx build`, as compose runs it: the user's own builder and cache keys.
    Buildx {
        /// The `docker` CLI that answered `docker buildx version`.
        docker: PathBuf,
    },
    /// The engine's `/build` endpoint with a BuildKit session, for machines without buildx.
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

    /// The backend's name as `config` spells it, for outcomes, build records and logs.
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

    /// Runs one build to the end, writing its output to `log` (whose last lines a failure
    /// quotes).
    pub async fn build(&self, req: &Request<'_>, log: &mut BuildLog) -> Result<(), BuildFailure> {
        match self {
            Builder::Buildx { docker } => buildx::build(docker, req, log).await,
            Builder::Bollard(engine) => bollard_backend::build(engine, req, log).await,
        }
    }
}

pub use buildx::version as buildx_version;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_command_line_is_what_a_shell_takes_back() {
        let args = BTreeMap::from([("MSG".to_string(), "it's here".to_string())]);
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        let named = BTreeMap::new();
        let tags = ["p-app".to_string(), "p_app".to_string()];
        let cache_from = ["dockwarm/p-app-deps:0123".to_string()];
        let req = Request {
            context_dir: Path::new("/w s"),
            dockerfile_path: Path::new("/w s/Dockerfile"),
            dockerfile_text: None,
            target: Some("runtime"),
            network: Some("host"),
            cache_from: &cache_from,
            inline_cache: true,
            args: &args,
            named_contexts: &named,
            labels: &labels,
            tags: &tags,
            scratch_dir: Path::new("/tmp"),
        };
        let buildx = shell_line("docker", &req.cli_args(req.dockerfile_path, true));
        assert_eq!(
            buildx,
            "docker buildx build --progress=plain --file '/w s/Dockerfile' --target runtime --network host --build-arg 'MSG=it'\\''s here' --cache-to type=inline --cache-from type=registry,ref=dockwarm/p-app-deps:0123 --label a=b --tag p-app --tag p_app --load '/w s'"
        );
        let engine = shell_line("docker", &req.cli_args(req.dockerfile_path, false));
        assert!(
            engine.contains(
                "--build-arg BUILDKIT_INLINE_CACHE=1 --cache-from dockwarm/p-app-deps:0123"
            ) && !engine.contains("--load"),
            "{engine}"
        );
    }
}
