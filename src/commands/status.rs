//! `dockwarm status [--json]`: per registered workspace and image, what is warm, building,
//! queued, failed or cold; and the shared volumes' sizes.
//!
//! Three sources, each optional: the state directory (always: registry and build records), the
//! daemon (building and queued, when it runs) and the engine (the exact fingerprint and whether
//! its image exists, when it answers). With the engine down it still shows what the state
//! directory knows, and says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config;
use crate::daemon::protocol::DaemonStatus;
use crate::engine::Engine;
use crate::plan::{self, WorkspacePlan};
use crate::prebuild;
use crate::registry::{self, Saved};
use crate::state::{BuildRecord, State};
use crate::volumes::human_size;
use crate::workspace::Workspace;

/// How long status waits for the engine before showing what it knows without it.
const ENGINE_BUDGET: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize)]
pub struct Report {
    pub engine: EngineState,
    /// The daemon's own report, when one runs.
    pub daemon: Option<DaemonStatus>,
    pub workspaces: Vec<WorkspaceReport>,
    pub volumes: Vec<VolumeReport>,
    /// Every workspace's builds served warm and the cold build time they avoided.
    pub saved: Saved,
    /// dockwarm's images against the budget, and the BuildKit cache, as last measured.
    pub disk: crate::disk::View,
    /// Per project with a team registry: the last thing that happened with it.
    pub team_registry: Vec<TeamRegistryReport>,
}

#[derive(Debug, Serialize)]
pub struct TeamRegistryReport {
    pub project: String,
    pub registry: String,
    pub last_event: Option<crate::remote::Event>,
}

#[derive(Debug, Serialize)]
pub struct EngineState {
    pub up: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WorkspaceReport {
    pub name: String,
    pub path: PathBuf,
    pub project: String,
    /// This checkout (where status ran).
    pub current: bool,
    pub images: Vec<ImageReport>,
    pub error: Option<String>,
    /// The sum of its images' `saved`.
    pub saved: Saved,
}

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub image: String,
    /// The fingerprint: computed now with the engine, else the last one built (see `exact`).
    pub fingerprint: Option<String>,
    /// Whether `fingerprint` is the current one (the engine answered) or the last known.
    pub exact: bool,
    /// warm, building, queued, failed or cold.
    pub state: String,
    pub last_build: Option<LastBuild>,
    pub error: Option<String>,
    /// Builds of this image served warm here, and the cold build time they avoided.
    pub saved: Saved,
}

#[derive(Debug, Serialize)]
pub struct LastBuild {
    /// "built", "cached", "pulled" (from the team registry) or "failed".
    pub status: String,
    /// Seconds since the Unix epoch.
    pub finished_at: u64,
    pub duration_ms: u64,
    pub log: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct VolumeReport {
    pub project: String,
    pub name: String,
    pub exists: bool,
    pub size: Option<u64>,
}

pub fn run(dir: &Path, json: bool) -> anyhow::Result<()> {
    let state = State::open()?;
    let here = Workspace::discover(dir).ok().map(|w| w.root);
    let report = collect(&state, here.as_deref())?;
    if json {
        return super::print_json(&report);
    }
    print(&report);
    Ok(())
}

pub fn collect(state: &State, here: Option<&Path>) -> anyhow::Result<Report> {
    let daemon = super::daemon::query(state);
    let rt = super::runtime()?;
    let engine = rt.block_on(async {
        // Through `connect`: cleanups owed by archives made while the engine was down are
        // finished by the next dockwarm that reaches it, this one.
        match tokio::time::timeout(ENGINE_BUDGET, super::connect(state)).await {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", ENGINE_BUDGET.as_secs())),
        }
    });
    let (engine, engine_error) = match engine {
        Ok(e) => (Some(e), None),
        Err(e) => (None, Some(e)),
    };
    let mut workspaces = Vec::new();
    let mut volumes = Vec::new();
    let mut volume_projects = BTreeMap::new();
    for ws in registry::list(state) {
        let mut report = WorkspaceReport {
            name: ws.name.clone(),
            path: ws.path.clone(),
            project: ws.project.clone(),
            current: here == Some(ws.path.as_path()),
            images: Vec::new(),
            error: None,
            saved: ws.images.values().fold(Saved::default(), |mut sum, s| {
                sum += s.saved;
                sum
            }),
        };
        let dialect = engine
            .as_ref()
            .map(Engine::ignore_dialect)
            .unwrap_or_else(|| plan::remembered_dialect(state));
        let plan = match Workspace::discover(&ws.path)
            .map_err(config::ConfigError::from)
            .and_then(|w| WorkspacePlan::load(state, &w, dialect))
        {
            Ok(p) => p,
            Err(e) => {
                report.error = Some(e.to_string());
                workspaces.push(report);
                continue;
            }
        };
        let config = &plan.config;
        for image_plan in &plan.images {
            let image = &image_plan.name;
            let seen = ws.images.get(image);
            let mut r = ImageReport {
                image: image.clone(),
                fingerprint: seen.and_then(|s| s.fingerprint.clone()),
                exact: false,
                state: "cold".into(),
                last_build: None,
                error: image_plan.deps.as_ref().err().map(|e| e.to_string()),
                saved: seen.map(|s| s.saved).unwrap_or_default(),
            };
            let mut warm = false;
            if let Some(engine) = &engine {
                let exact = rt.block_on(async {
                    let fp = prebuild::fingerprint_image(engine, image_plan).await?;
                    let tag = fp.tag(&config.project.value);
                    let built = prebuild::built_image(engine, &tag, &fp.hex).await?;
                    Ok::<_, prebuild::PrebuildError>((fp.hex, built))
                });
                match exact {
                    Ok((fp, built)) => {
                        r.fingerprint = Some(fp);
                        r.exact = true;
                        warm = built;
                    }
                    Err(e) => r.error = Some(e.to_string()),
                }
            } else if let (Some(d), Some(s)) = (&image_plan.inputs_digest, seen) {
                // Without the engine: warm as far as the state directory knows.
                warm = s.built() == Some(d.as_str());
            }
            let record: Option<BuildRecord> =
                r.fingerprint.as_deref().and_then(|f| state.build_record(f));
            let daemon_state = daemon.as_ref().and_then(|d| {
                let has = |j: &crate::daemon::protocol::JobView| {
                    j.project == config.project.value
                        && j.image == *image
                        && j.workspaces.iter().any(|w| w == &ws.path)
                };
                if d.running.iter().any(has) {
                    Some("building")
                } else if d.queued.iter().any(has) {
                    Some("queued")
                } else if d
                    .failed
                    .iter()
                    .any(|f| f.workspace == ws.path && f.image == *image)
                {
                    Some("failed")
                } else {
                    None
                }
            });
            r.state = match daemon_state {
                Some(s) => s.to_string(),
                None if warm => "warm".into(),
                None if record.as_ref().is_some_and(|b| b.status == "failed") => "failed".into(),
                None => "cold".into(),
            };
            r.last_build = record.map(|b| LastBuild {
                status: b.status,
                finished_at: b.finished_at,
                duration_ms: b.duration_ms,
                log: b.log,
            });
            report.images.push(r);
        }
        volume_projects
            .entry(config.project.value.clone())
            .or_insert_with(|| config.clone());
        workspaces.push(report);
    }
    if let Some(engine) = &engine {
        for (project, config) in &volume_projects {
            if let Ok(rows) = rt.block_on(crate::volumes::list(engine, config)) {
                for row in rows {
                    volumes.push(VolumeReport {
                        project: project.clone(),
                        name: row.name,
                        exists: row.exists,
                        size: row.size,
                    });
                }
            }
        }
    }
    let team_registry = volume_projects
        .iter()
        .filter_map(|(project, config)| {
            let team = config.registry.as_ref()?;
            Some(TeamRegistryReport {
                project: project.clone(),
                registry: team.value.to_string(),
                last_event: crate::remote::last_event(state, project),
            })
        })
        .collect();
    let saved = workspaces.iter().fold(Saved::default(), |mut sum, w| {
        sum += w.saved;
        sum
    });
    Ok(Report {
        saved,
        engine: EngineState {
            up: engine.is_some(),
            error: engine_error,
        },
        daemon,
        workspaces,
        volumes,
        disk: crate::disk::view(state, here),
        team_registry,
    })
}

fn print(report: &Report) {
    match &report.daemon {
        Some(d) => println!(
            "daemon: running (pid {}), {} building, {} queued",
            d.pid,
            d.running.len(),
            d.queued.len()
        ),
        None => println!("daemon: not running (`dockwarm daemon start`)"),
    }
    // Queued work waits on the daemon's engine, which may not be the one this shell reaches.
    if let Some(e) = report.daemon.as_ref().and_then(|d| d.engine_error.as_ref()) {
        println!("daemon: cannot reach its engine, so builds wait: {e}");
    }
    if let Some(e) = &report.engine.error {
        println!(
            "engine: down ({e}); showing what the state directory knows (fingerprints are the last built)"
        );
    }
    if report.workspaces.is_empty() {
        println!("no registered workspace (`dockwarm init` in a checkout)");
    }
    for ws in &report.workspaces {
        let mark = if ws.current { " (here)" } else { "" };
        println!(
            "{}{mark}  {}  [{}]{}",
            ws.name,
            ws.path.display(),
            ws.project,
            saved_text(&ws.saved)
        );
        if let Some(e) = &ws.error {
            println!("  {}", super::paint(&format!("error: {e}"), "31"));
        }
        for i in &ws.images {
            let state = match i.state.as_str() {
                "warm" => super::paint("warm", "32"),
                "failed" => super::paint("failed", "31"),
                "building" | "queued" => super::paint(&i.state, "33"),
                other => other.to_string(),
            };
            let fp = i
                .fingerprint
                .as_deref()
                .map(|f| &f[..f.len().min(12)])
                .unwrap_or("-");
            let approx = if i.exact || i.fingerprint.is_none() {
                ""
            } else {
                " (last built)"
            };
            let last = i
                .last_build
                .as_ref()
                .map(|b| {
                    format!(
                        "  last build: {} {} ago, {:.1}s",
                        b.status,
                        ago(b.finished_at),
                        b.duration_ms as f64 / 1000.0
                    )
                })
                .unwrap_or_default();
            println!("  {:<12} {state:<8} {fp}{approx}{last}", i.image);
            if let Some(e) = &i.error {
                println!("    {e}");
            }
        }
    }
    if report.saved.builds > 0 {
        println!(
            "time saved, all workspaces: {} ({} warm builds)",
            duration_text(report.saved.ms),
            report.saved.builds
        );
    }
    if report.engine.up {
        for v in &report.volumes {
            let size = match (v.exists, v.size) {
                (false, _) => "missing".to_string(),
                (true, Some(s)) => human_size(s),
                (true, None) => "size unknown".to_string(),
            };
            println!("volume {}  {size}", v.name);
        }
    } else {
        println!("volumes: sizes unknown while the engine is down");
    }
    for t in &report.team_registry {
        match &t.last_event {
            Some(e) => {
                let line = format!("{} ({} ago)", e.line, ago(e.at));
                let line = if e.ok {
                    line
                } else {
                    super::paint(&line, "33")
                };
                println!("team registry {} [{}]: {line}", t.registry, t.project);
            }
            None => println!("team registry {} [{}]: not used yet", t.registry, t.project),
        }
    }
    println!("{}", report.disk.line());
}

/// "  saved 3m12s (5 warm builds)", or nothing before the first warm build.
fn saved_text(saved: &Saved) -> String {
    if saved.builds == 0 {
        return String::new();
    }
    let plural = if saved.builds == 1 { "" } else { "s" };
    format!(
        "  saved {} ({} warm build{plural})",
        duration_text(saved.ms),
        saved.builds
    )
}

fn duration_text(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn ago(at: u64) -> String {
    let secs = crate::state::now_secs().saturating_sub(at);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}
