//! What `dockwarm registry status` reports: reachable, authenticated, fingerprints held.

use serde::Serialize;

use super::{Access, Event, Team};
use crate::plan::WorkspacePlan;
use crate::state::State;

/// The team registry as this checkout sees it.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The registry (`host/path`), None when none is configured.
    pub registry: Option<String>,
    /// Where the setting came from.
    pub from: Option<String>,
    /// Whether dockwarm may fall back to plain HTTP for it (loopback, or listed `insecure`).
    pub plain_http: bool,
    /// Whether it answered at all (a refusal counts: it is there).
    pub reachable: bool,
    /// `anonymous` or `authenticated`, once it answered and let us in.
    pub access: Option<Access>,
    /// Who docker's credentials say we are (never the secret).
    pub identity: Option<String>,
    /// Why it is unreachable or refuses, in one line.
    pub error: Option<String>,
    /// Per configured image, what the registry holds; empty when it did not answer.
    pub images: Vec<ImageHeld>,
    /// The last thing that happened with it on this machine.
    pub last_event: Option<Event>,
}

/// One image's fingerprints in the registry.
#[derive(Debug, Serialize)]
pub struct ImageHeld {
    /// The configured image's name.
    pub image: String,
    /// Where its dependency images live in the registry (`host/path/...`), to find them with
    /// the registry's own tools.
    pub repository: String,
    /// How many fingerprints of this image the registry holds.
    pub fingerprints: usize,
    /// This checkout's fingerprint now (when the engine answered), and whether it is held.
    pub current: Option<String>,
    /// Whether the registry holds `current`: a checkout whose fingerprint is held starts
    /// warm on any machine. None when the fingerprint is not known.
    pub current_held: Option<bool>,
}

/// Asks the registry (and, for the current fingerprints, the engine when it answers within a
/// few seconds) about the plan's images.
pub async fn collect(state: &State, plan: &WorkspacePlan) -> Report {
    let config = &plan.config;
    let project = config.project.value.as_str();
    let mut report = Report {
        registry: None,
        from: None,
        plain_http: false,
        reachable: false,
        access: None,
        identity: None,
        error: None,
        images: Vec::new(),
        last_event: super::last_event(state, project),
    };
    let Some(team) = &config.registry else {
        return report;
    };
    report.registry = Some(team.value.to_string());
    report.from = Some(team.from.to_string());
    report.plain_http = team.value.plain_http;
    let client = match Team::new(&team.value, state.env()) {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    report.identity = client.identity();
    match client.check().await {
        Ok(access) => {
            report.reachable = true;
            report.access = Some(access);
        }
        Err(e) => {
            // A refusal is an answer: it is there.
            report.reachable = matches!(e, super::RemoteError::Unauthorized { .. });
            report.error = Some(e.to_string());
            return report;
        }
    }
    let engine = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        crate::engine::Engine::connect(state.env()),
    )
    .await
    .ok()
    .and_then(Result::ok);
    for image in &config.images {
        let held = match client.fingerprints(project, &image.name).await {
            Ok(h) => h,
            Err(e) => {
                report.error = Some(e.to_string());
                return report;
            }
        };
        let mut current = None;
        if let (Some(engine), Some(image_plan)) = (&engine, plan.image(&image.name)) {
            if let Ok(fp) = crate::prebuild::fingerprint_image(engine, image_plan).await {
                current = Some(fp.hex);
            }
        }
        report.images.push(ImageHeld {
            image: image.name.clone(),
            repository: format!(
                "{}/{}",
                team.value.host,
                team.value.repository(project, &image.name)
            ),
            fingerprints: held.len(),
            current_held: current.as_ref().map(|c| held.contains(c)),
            current,
        });
    }
    report
}
