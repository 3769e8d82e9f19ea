//! `dockwarm status [--json] [--sizes]`: prints what [`crate::status`] answers, per registered
//! workspace and image, and the shared volumes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::registry::Saved;
use crate::state::State;
use crate::status::{self, ImageState, Report};
use crate::volumes::human_size;
use crate::workspace::Workspace;

/// How long status gives the engine, all its calls together (connecting included), before it
/// shows what it knows without it: the engine answers these in milliseconds, unless it is
/// holding its answers while a build exports layers.
const ENGINE_BUDGET: Duration = Duration::from_millis(800);
/// With `--sizes`: `/system/df` walks every volume and cache record.
const SIZES_BUDGET: Duration = Duration::from_secs(10);

/// Collects and prints the status.
pub fn run(env: &crate::env::Env, dir: &Path, json: bool, sizes: bool) -> anyhow::Result<()> {
    let state = State::open(env)?;
    let here = Workspace::discover(dir).ok().map(|w| w.root);
    let daemon = super::daemon::query(&state);
    let rt = super::runtime()?;
    let report = rt.block_on(async {
        let budget = if sizes { SIZES_BUDGET } else { ENGINE_BUDGET };
        let started = Instant::now();
        // Through `connect`: cleanups owed by archives made while the engine was down are
        // finished by the next dockwarm that reaches it, this one.
        let engine = match tokio::time::timeout(budget, super::connect(&state)).await {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:.1}s", budget.as_secs_f64())),
        };
        let options = status::Options {
            engine_budget: budget.saturating_sub(started.elapsed()),
            sizes,
        };
        status::collect(&state, here.as_deref(), daemon, engine, &options).await
    });
    if json {
        return super::print_json(&report);
    }
    print(&report);
    Ok(())
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
            "engine: {e}; showing what the state directory knows (fingerprints are the last built)"
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
            let word = i.state.word();
            let state = match &i.state {
                ImageState::Warm => super::paint(word, "32"),
                ImageState::Failed => super::paint(word, "31"),
                ImageState::Building { .. } | ImageState::Queued | ImageState::Stale { .. } => {
                    super::paint(word, "33")
                }
                ImageState::Cold => word.to_string(),
            };
            let phase = match &i.state {
                ImageState::Building { phase: Some(p) } => format!(" ({p})"),
                _ => String::new(),
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
            let last = i.last_build.as_ref().map(last_text).unwrap_or_default();
            println!("  {:<12} {state:<8}{phase} {fp}{approx}{last}", i.image);
            if let ImageState::Stale { why } = &i.state {
                println!("    stale: {why}");
            }
            if let Some(e) = &i.error {
                println!("    {e}");
            }
        }
    }
    for a in &report.ahead {
        let short = a.refname.trim_start_matches("refs/remotes/");
        println!(
            "ahead {short} @ {}  ({}, looked {} ago)",
            &a.commit[..12.min(a.commit.len())],
            a.why,
            ago(a.at)
        );
        for i in &a.images {
            let state = match i.state.as_str() {
                "warm" | "built" => super::paint(&i.state, "32"),
                "failed" => super::paint("failed", "31"),
                other => super::paint(other, "33"),
            };
            println!(
                "  {:<12} {state:<8} {}",
                i.image,
                i.tag.as_deref().unwrap_or("")
            );
            if let Some(w) = &i.workspace {
                println!("  {:<12} {w:<8} (the commit's whole image)", "");
            }
        }
        if let Some(e) = &a.error {
            println!("  {}", super::paint(&format!("error: {e}"), "31"));
        }
    }
    if report.saved.builds > 0 {
        println!(
            "time saved, all workspaces: {} ({} warm builds)",
            duration_text(report.saved.ms),
            report.saved.builds
        );
    }
    if report.engine.up || !report.volumes.is_empty() {
        let when = report
            .volumes_measured_at
            .map(|at| format!(" (measured {} ago)", crate::state::ago(at)))
            .unwrap_or_default();
        for v in &report.volumes {
            let size = match (v.exists, v.size) {
                (false, _) => "missing".to_string(),
                (true, Some(s)) => format!("{}{when}", human_size(s)),
                (true, None) => "size not measured yet (`dockwarm status --sizes`)".to_string(),
            };
            println!("volume {}  {size}", v.name);
        }
    } else {
        println!("volumes: unknown while the engine does not answer");
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

/// "  last build: built 3m ago, dependency image 44.0s, workspace image 76.0s".
fn last_text(b: &status::LastBuild) -> String {
    if b.status == "building" {
        return format!("  started {} ago", ago(b.finished_at));
    }
    let mut out = format!("  last build: {} {} ago", b.status, ago(b.finished_at));
    if b.elsewhere {
        out.push_str(" (in another workspace)");
    }
    match (b.dependency_ms, &b.workspace_image) {
        (None, None) => out.push_str(&format!(", {}", seconds(b.duration_ms))),
        (deps, ws) => {
            if let Some(d) = deps {
                out.push_str(&format!(", dependency image {}", seconds(d)));
            }
            if let Some(w) = ws {
                let how = match w.status.as_str() {
                    "built" => String::new(),
                    other => format!(" {other}"),
                };
                out.push_str(&format!(
                    ", workspace image{how} {}",
                    seconds(w.duration_ms)
                ));
            }
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
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
    crate::state::ago(at)
}
