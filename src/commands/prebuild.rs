//! `dockwarm prebuild [IMAGE...] [--background] [--full]`.

use std::path::Path;

use crate::config::Backend;
use crate::plan::{self, WorkspacePlan};
use crate::prebuild::{self, Options, PrebuildError, Push, Status};
use crate::state::State;
use crate::workspace::Workspace;

/// `dockwarm prebuild`'s options, parsed by clap in main.rs. The field docs are the help text.
#[derive(clap::Args)]
pub struct Args {
    /// Images to build (default: all).
    pub images: Vec<String>,
    /// Start the build detached and return at once.
    // Its output goes to the background log.
    #[arg(long)]
    pub background: bool,
    /// Also build this workspace's full image and tag it with its compose names (with
    /// `--rev`: the commit's full image, under a dockwarm tag).
    #[arg(long)]
    pub full: bool,
    /// Build the dependency stages of this commit instead, from git's objects (no
    /// checkout): what the daemon does for a fetched default branch.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// No progress display (the log file still gets everything).
    // The result lines still print.
    #[arg(long, short)]
    pub quiet: bool,
    /// auto, buildx or bollard (default: from the configuration).
    // The build client for this run, overriding the configuration's.
    #[arg(long, value_parser = parse_backend)]
    pub backend: Option<Backend>,
    /// Push each dependency image the team registry lacks before returning, and fail if
    /// that fails (for CI; otherwise pushes run in the background).
    #[arg(long)]
    pub push: bool,
    /// Print the results as JSON (no progress display) instead of one line per image.
    // No help line, as before: `help = None` keeps `--json` bare in `--help`.
    #[arg(long, help = None)]
    pub json: bool,
}

/// `--backend`'s value parser: the configuration's own spelling of a backend.
fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

/// Shows a failed build's log tail before its one-line error.
fn report(e: PrebuildError) -> anyhow::Error {
    if let PrebuildError::Build { failure, .. } = &e {
        for line in &failure.tail {
            eprintln!("  {line}");
        }
    }
    e.into()
}

/// Prebuilds the images of the checkout containing `dir` (or of `--rev`), now or in the
/// background, and prints one line per image (or JSON) of what it did.
pub fn run(env: &crate::env::Env, dir: &Path, args: Args) -> anyhow::Result<()> {
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    if args.background {
        // Checked now, so a typo fails here rather than in the background.
        let config = WorkspacePlan::load(&state, &ws, plan::remembered_dialect(&state))?.config;
        config.select(&args.images)?;
        let mut bg: Vec<String> = vec!["prebuild".into(), "--quiet".into()];
        if args.full {
            bg.push("--full".into());
        }
        if let Some(rev) = &args.rev {
            bg.push(format!("--rev={}", crate::ahead::resolve(&ws.root, rev)?));
        }
        if args.push {
            bg.push("--push".into());
        }
        if let Some(b) = args.backend {
            bg.push(format!("--backend={}", format!("{b:?}").to_lowercase()));
        }
        bg.extend(args.images.iter().cloned());
        let bg: Vec<&str> = bg.iter().map(String::as_str).collect();
        let pid = crate::background::spawn(&state, &config.root, &bg)?;
        println!(
            "prebuild started in the background (pid {pid}); log: {}",
            crate::background::log_path(&state).display()
        );
        return Ok(());
    }
    // One full build of a workspace at a time, whoever started it (a daemon killed mid-build
    // leaves its child running; the next daemon waits on this lock instead of racing it).
    let _building = if args.full && args.rev.is_none() {
        Some(crate::daemon::orphans::hold(
            &state,
            &ws.root,
            args.json || args.quiet,
        )?)
    } else {
        None
    };
    let rt = super::runtime()?;
    let results = rt.block_on(async {
        let engine = super::connect(&state).await?;
        if let Some(rev) = &args.rev {
            let quiet = args.json || args.quiet;
            let (_, results) = crate::ahead::prebuild(
                &engine,
                &state,
                &ws,
                rev,
                &args.images,
                args.backend,
                quiet,
                args.full,
            )
            .await
            .map_err(|e| match e {
                crate::ahead::AheadPrebuildError::Build(b) => report(b),
                other => other.into(),
            })?;
            return anyhow::Ok(results);
        }
        let plan = WorkspacePlan::load(&state, &ws, engine.ignore_dialect())?;
        let options = Options {
            backend: args.backend.unwrap_or(plan.config.backend.value),
            quiet: args.json || args.quiet,
            full: args.full,
            push: if args.push {
                Push::Now
            } else {
                Push::Background
            },
        };
        prebuild::run(&engine, &state, &plan, &args.images, &options)
            .await
            .map_err(report)
    })?;
    if args.json {
        return super::print_json(&results);
    }
    for r in results {
        let o = &r.outcome;
        let secs = o.duration_ms as f64 / 1000.0;
        match o.status {
            Status::Built => println!(
                "{}: built {} in {secs:.1}s ({})",
                o.image,
                o.tag,
                o.backend.as_deref().unwrap_or("?")
            ),
            Status::AlreadyBuilt => println!("{}: already built {}", o.image, o.tag),
            Status::Pulled => println!(
                "{}: pulled {} from the team registry in {secs:.1}s",
                o.image, o.tag
            ),
            Status::InputsChanged => println!(
                "{}: inputs changed during the build; {} is left to the next build",
                o.image, o.tag
            ),
        }
        if let (Some(line), false) = (&o.registry, o.status == Status::Pulled) {
            println!("{}: {line}", o.image);
        }
        let Some(built) = &r.workspace_image else {
            continue;
        };
        if !built.skipped.is_empty() {
            println!(
                "{}: left {} alone (images you made, not dockwarm)",
                o.image,
                built.skipped.join(", ")
            );
        }
        if !built.tags.is_empty() {
            let how = if built.reused {
                "reused an image built from identical sources"
            } else {
                "built"
            };
            println!(
                "{}: workspace image {how}, tagged {}",
                o.image,
                built.tags.join(", ")
            );
        }
    }
    Ok(())
}
