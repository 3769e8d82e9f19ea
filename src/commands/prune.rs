//! `dockwarm prune [--keep N] [--older-than D] [--dry-run] [--all-projects]`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::config;
use crate::plan::WorkspacePlan;
use crate::prebuild;
use crate::prune::{self, Kept};
use crate::registry;
use crate::state::{now_secs, State};
use crate::volumes::human_size;
use crate::workspace::Workspace;

pub struct Args {
    pub keep: Option<u32>,
    pub older_than: Option<Duration>,
    pub dry_run: bool,
    pub all_projects: bool,
    pub json: bool,
}

pub fn run(dir: &Path, args: Args) -> anyhow::Result<()> {
    let state = State::open()?;
    let here = config::load(dir).ok();
    // Scoped to this checkout's project unless asked: one developer's engine also holds other
    // repositories' images, whose workspaces may be registered elsewhere.
    let projects: Option<BTreeSet<String>> = match (&here, args.all_projects) {
        (Some(c), false) => Some(BTreeSet::from([c.project.value.clone()])),
        (None, false) => {
            anyhow::bail!("not in a dockwarm checkout: run prune in one, or pass --all-projects")
        }
        (_, true) => None,
    };
    let keep = args
        .keep
        .or(here.as_ref().map(|c| c.prune_keep.value))
        .unwrap_or(3) as usize;
    let rt = super::runtime()?;
    rt.block_on(async {
        let engine = super::connect(&state).await?;
        let images = prune::list(&engine, projects.as_ref()).await?;
        let used = used_fingerprints(&engine, &state, projects.as_ref()).await;
        let containers = prune::container_images(&engine).await?;
        let choice = prune::choose(
            images,
            &used,
            &containers,
            keep,
            args.older_than,
            now_secs() as i64,
        );
        let before = if args.dry_run {
            None
        } else {
            prune::layers_size(&engine).await
        };
        let results = if args.dry_run {
            choice.remove.iter().map(|i| (i.clone(), None)).collect()
        } else {
            prune::remove(&engine, &choice.remove).await
        };
        let after = match before {
            Some(_) => prune::layers_size(&engine).await,
            None => None,
        };
        let listed: u64 = results
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|(i, _)| i.size)
            .sum();
        let freed = before.zip(after).map(|(b, a)| b.saturating_sub(a));
        if args.json {
            let removed: Vec<_> = results
                .iter()
                .map(|(i, e)| serde_json::json!({"image": i, "error": e}))
                .collect();
            let kept: Vec<_> = choice
                .keep
                .iter()
                .map(|(i, why)| serde_json::json!({"image": i, "kept": why}))
                .collect();
            return super::print_json(&serde_json::json!({
                "dry_run": args.dry_run,
                "keep": keep,
                "removed": removed,
                "kept": kept,
                "images_size": listed,
                "freed": freed,
            }));
        }
        for (i, why) in &choice.keep {
            let why = match why {
                Kept::InUse => "in use by a workspace".to_string(),
                Kept::Container(c) => format!("container {c} uses it"),
                Kept::Newest => format!("among the {keep} newest"),
                Kept::TooRecent => "younger than --older-than".to_string(),
            };
            println!("keep    {} ({why})", i.tags.join(", "));
        }
        let verb = if args.dry_run { "would remove" } else { "removed" };
        let mut failed = 0;
        for (i, error) in &results {
            match error {
                None => println!("{verb} {} ({})", i.tags.join(", "), human_size(i.size)),
                Some(e) => {
                    failed += 1;
                    println!("left    {} ({e})", i.tags.join(", "));
                }
            }
        }
        let count = results.len() - failed;
        match freed {
            Some(f) => println!(
                "{verb} {count} image(s): {} freed on disk ({} in image sizes; layers shared with other images stay)",
                human_size(f),
                human_size(listed)
            ),
            None => println!("{verb} {count} image(s), {} in image sizes (layers shared with other images stay)", human_size(listed)),
        }
        if failed > 0 {
            anyhow::bail!("{failed} image(s) could not be removed (see above)");
        }
        anyhow::Ok(())
    })
}

/// The fingerprints registered workspaces need: each one's current fingerprint (computed now,
/// base image IDs included) and the last one it built (its workspace image is made on it).
async fn used_fingerprints(
    engine: &crate::engine::Engine,
    state: &State,
    projects: Option<&BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for ws in registry::list(state) {
        if projects.is_some_and(|p| !p.contains(&ws.project)) {
            continue;
        }
        used.extend(ws.images.values().filter_map(|s| s.fingerprint.clone()));
        let Ok(plan) = Workspace::discover(&ws.path)
            .map_err(config::ConfigError::from)
            .and_then(|w| WorkspacePlan::load(state, &w, engine.ignore_dialect()))
        else {
            continue;
        };
        for image in &plan.images {
            if let Ok(fp) = prebuild::fingerprint_image(engine, image).await {
                used.insert(fp.hex);
            }
        }
    }
    used
}
