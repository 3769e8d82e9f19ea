//! `dockwarm prebuild [IMAGE...] [--background] [--full]`.

use std::path::Path;

use crate::config::{self, Backend};
use crate::prebuild::{self, Options, PrebuildError, Status};
use crate::registry;
use crate::state::State;

pub struct Args {
    pub images: Vec<String>,
    pub background: bool,
    /// Also build this workspace's full image and tag it with its compose names.
    pub full: bool,
    pub quiet: bool,
    pub backend: Option<Backend>,
    pub json: bool,
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

pub fn run(dir: &Path, args: Args) -> anyhow::Result<()> {
    let config = config::load(dir)?;
    let selected = config.select(&args.images)?;
    let state = State::open()?;
    if args.background {
        let mut bg: Vec<String> = vec!["prebuild".into(), "--quiet".into()];
        if args.full {
            bg.push("--full".into());
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
    let _building = if args.full {
        Some(crate::daemon::orphans::hold(
            &state,
            &config.root,
            args.json || args.quiet,
        )?)
    } else {
        None
    };
    let options = Options {
        backend: args.backend.unwrap_or(config.backend.value),
        quiet: args.json || args.quiet,
    };
    let rt = super::runtime()?;
    let outcomes = rt.block_on(async {
        let engine = super::connect(&state).await?;
        if args.full {
            crate::volumes::ensure(&engine, &config).await?;
        }
        let mut outcomes = Vec::new();
        for image in selected {
            // Taken before the build and checked after it: a change made while it runs (a
            // checkout mid-build) must stay owed, so the build only counts for inputs that held
            // still throughout.
            let inputs_digest = || {
                crate::fingerprint::plan(&config, image, crate::ignore::Dialect::Current)
                    .ok()
                    .map(|plan| crate::fingerprint::inputs_digest(&plan))
            };
            let digest = inputs_digest();
            let outcome = prebuild::prebuild_image(&engine, &state, &config, image, &options)
                .await
                .map_err(report)?;
            // A workspace archived meanwhile gets no new tags: its archive already ran.
            if args.full && registry::get(&state, &config.root).is_some() {
                let built = prebuild::build_workspace_image(
                    &engine,
                    &state,
                    &config,
                    image,
                    &outcome.fingerprint,
                    &options,
                )
                .await
                .map_err(report)?;
                if registry::get(&state, &config.root).is_none() {
                    for tag in &built.tags {
                        let _ = crate::pending::remove_tag(&engine, tag).await;
                    }
                    outcomes.push(outcome);
                    continue;
                }
                if !built.skipped.is_empty() {
                    println!(
                        "{}: left {} alone (images you made, not dockwarm)",
                        image.name,
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
                        image.name,
                        built.tags.join(", ")
                    );
                }
                let digest_after = inputs_digest();
                registry::update(&state, &config.root, |w| {
                    let seen = w.images.entry(image.name.clone()).or_default();
                    seen.fingerprint = Some(outcome.fingerprint.clone());
                    seen.tags = built.tags.clone();
                    if digest.is_some() && digest == digest_after {
                        seen.built_digest = digest.clone();
                    }
                })?;
            }
            outcomes.push(outcome);
        }
        anyhow::Ok(outcomes)
    })?;
    if args.json {
        return super::print_json(&outcomes);
    }
    for o in outcomes {
        let secs = o.duration_ms as f64 / 1000.0;
        match o.status {
            Status::Built => println!(
                "{}: built {} in {secs:.1}s ({})",
                o.image,
                o.tag,
                o.backend.as_deref().unwrap_or("?")
            ),
            Status::AlreadyBuilt => println!("{}: already built {}", o.image, o.tag),
        }
    }
    Ok(())
}
