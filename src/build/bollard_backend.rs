//! The engine's own `/build` endpoint through bollard, with BuildKit and a session.
//!
//! dockwarm writes the context tar itself (honouring `.dockerignore` like the docker CLI, with
//! deterministic headers), so cache keys match those of the user's `docker build` of the same
//! directory. The Dockerfile travels inside the tar under a private name, so a Dockerfile kept
//! outside the context, or a generated prefix of one, builds the same way.

use std::collections::HashMap;

use bollard::models::{BuildInfo, BuildInfoAux};
use bollard::query_parameters::{BuildImageOptions, BuilderVersion, TagImageOptions};
use futures_util::StreamExt;

use super::{BuildFailure, Request};
use crate::context;
use crate::engine::Engine;
use crate::ignore::IgnoreRules;
use crate::progress::BuildLog;

const DOCKERFILE_IN_TAR: &str = ".dockwarm.Dockerfile";

pub async fn build(
    engine: &Engine,
    req: &Request<'_>,
    log: &mut BuildLog,
) -> Result<(), BuildFailure> {
    let fail = |message: String| BuildFailure::plain(message);
    if !req.named_contexts.is_empty() {
        let names: Vec<&str> = req.named_contexts.keys().map(String::as_str).collect();
        return Err(fail(format!(
            "the build uses named contexts ({}), which only the buildx backend passes; install docker buildx or set [build] backend = \"buildx\"",
            names.join(", ")
        )));
    }
    let text = match req.dockerfile_text {
        Some(t) => t.to_string(),
        None => std::fs::read_to_string(req.dockerfile_path).map_err(|e| {
            fail(format!(
                "cannot read {}: {e}",
                req.dockerfile_path.display()
            ))
        })?,
    };
    let rules = IgnoreRules::load(req.context_dir, req.dockerfile_path)
        .map_err(|e| fail(e.to_string()))?
        .with_dialect(engine.ignore_dialect());
    let mut tar = Vec::new();
    let extra = [(DOCKERFILE_IN_TAR.to_string(), text.into_bytes())];
    let stats = context::write_tar(req.context_dir, &rules, &extra, &mut tar)
        .map_err(|e| fail(e.to_string()))?;
    // What the engine's /build endpoint is sent, as the docker CLI command that sends the
    // same (the Dockerfile travels in the context tar; `BUILDKIT_INLINE_CACHE` is the
    // endpoint's inline-cache switch).
    log.line(&format!(
        "# DOCKER_BUILDKIT=1 {}",
        super::shell_line("docker", &req.cli_args(req.dockerfile_path, false))
    ));
    log.line(&format!(
        "# bollard build (the engine's /build endpoint{}): context {} ({} files, {})",
        if req.dockerfile_text.is_some() {
            ", the Dockerfile's dependency stage only"
        } else {
            ""
        },
        req.context_dir.display(),
        stats.files,
        crate::volumes::human_size(stats.content_bytes)
    ));

    let Some((first_tag, other_tags)) = req.tags.split_first() else {
        return Err(fail("no tag to build".into()));
    };
    let options = BuildImageOptions {
        dockerfile: DOCKERFILE_IN_TAR.to_string(),
        t: Some(first_tag.clone()),
        target: req.target.unwrap_or_default().to_string(),
        networkmode: req.network.map(str::to_string),
        cachefrom: (!req.cache_from.is_empty()).then(|| req.cache_from.to_vec()),
        buildargs: Some({
            let mut args: HashMap<String, String> = req
                .args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // The engine's own switch for inline cache metadata in the built image.
            if req.inline_cache {
                args.insert("BUILDKIT_INLINE_CACHE".into(), "1".into());
            }
            args
        }),
        labels: Some(
            req.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        version: BuilderVersion::BuilderBuildKit,
        session: Some(format!("dockwarm-{}", uuid::Uuid::new_v4())),
        rm: true,
        ..Default::default()
    };
    let mut stream = engine
        .docker
        .build_image(options, None, Some(bollard::body_full(tar.into())));
    let mut renderer = Renderer::default();
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(msg) = renderer.render(&info, log) {
                    error = Some(msg);
                }
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(message) = error {
        return Err(BuildFailure::from_log(log, message));
    }
    for tag in other_tags {
        let (repo, tag_part) = tag.rsplit_once(':').unwrap_or((tag.as_str(), "latest"));
        engine
            .docker
            .tag_image(
                first_tag,
                Some(TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag_part.to_string()),
                }),
            )
            .await
            .map_err(|e| fail(format!("tagging {tag}: {e}")))?;
    }
    Ok(())
}

/// Turns BuildKit status messages into the plain progress format buildx prints, so that one
/// reader finds the failing step for both backends.
#[derive(Default)]
struct Renderer {
    ids: HashMap<String, usize>,
    announced: HashMap<usize, (bool, bool)>,
}

impl Renderer {
    fn id(&mut self, digest: &str) -> usize {
        let next = self.ids.len() + 1;
        *self.ids.entry(digest.to_string()).or_insert(next)
    }

    /// Logs what `info` says; returns the build's error message if it reports one.
    fn render(&mut self, info: &BuildInfo, log: &mut BuildLog) -> Option<String> {
        if let Some(stream) = &info.stream {
            for l in stream.lines().filter(|l| !l.trim().is_empty()) {
                log.line(l);
            }
        }
        if let Some(detail) = &info.error_detail {
            return Some(
                detail
                    .message
                    .clone()
                    .unwrap_or_else(|| "build failed".into()),
            );
        }
        let Some(BuildInfoAux::BuildKit(status)) = &info.aux else {
            return None;
        };
        for v in &status.vertexes {
            let n = self.id(&v.digest);
            let (started, done) = self.announced.get(&n).copied().unwrap_or((false, false));
            if !started && (v.started.is_some() || v.cached) {
                log.line(&format!("#{n} {}", v.name));
            }
            let mut finished = done;
            if !done {
                if v.cached {
                    log.line(&format!("#{n} CACHED"));
                    finished = true;
                } else if !v.error.is_empty() {
                    log.line(&format!("#{n} ERROR: {}", v.error));
                    finished = true;
                } else if v.completed.is_some() {
                    log.line(&format!("#{n} DONE"));
                    finished = true;
                }
            }
            self.announced
                .insert(n, (started || v.started.is_some() || v.cached, finished));
        }
        for l in &status.logs {
            let n = self.id(&l.vertex);
            for line in String::from_utf8_lossy(&l.msg).lines() {
                log.line(&format!("#{n} {line}"));
            }
        }
        None
    }
}
