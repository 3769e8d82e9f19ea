//! `dockwarm prune [--keep N] [--older-than D] [--budget [SIZE]] [--dry-run] [--all-projects]`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::cleanup;
use crate::config;
use crate::disk;
use crate::prune::{self, Kept};
use crate::registry;
use crate::state::{now_secs, State};
use crate::volumes::human_size;

/// The command line of `dockwarm prune`, parsed by clap in main.rs. The field docs are the
/// help text.
#[derive(clap::Args)]
pub struct Args {
    /// Unused images kept per image, newest first (default: [prune] keep).
    // None takes `[prune] keep` (3 when unset).
    #[arg(long)]
    pub keep: Option<u32>,
    /// Only remove images older than this: 90s, 30m, 12h, 7d, 2w.
    // Younger ones are kept as too recent.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Show what would go, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Every project's images, not only this checkout's project.
    // The one way to prune outside a checkout.
    #[arg(long)]
    pub all_projects: bool,
    /// Enforce the disk budget instead: remove the least recently used images until
    /// dockwarm's use is under SIZE (default: [prune] budget), as the daemon does.
    // `--budget` gives Some(""), `--budget SIZE` Some(SIZE).
    #[arg(long, value_name = "SIZE", num_args = 0..=1, default_missing_value = "")]
    pub budget: Option<String>,
    /// Print nothing unless something was removed or failed (the daemon's runs).
    // So the daemon's runs (after each build and hourly) log only what they did.
    #[arg(long)]
    pub quiet: bool,
    /// One JSON object instead of text.
    // No help line, as before: `help = None` keeps `--json` bare in `--help`.
    #[arg(long, help = None)]
    pub json: bool,
}

/// `--older-than`'s value parser: `prune::parse_age`'s units, its error as clap's message.
fn parse_age(s: &str) -> Result<Duration, String> {
    prune::parse_age(s).map_err(|e| e.to_string())
}

/// Runs `dockwarm prune`: the orphan cleanup first, then the disk budget (`--budget`) or the keep
/// and age rules, printing what went, what stayed and why; an error when an image could not go.
pub fn run(env: &crate::env::Env, dir: &Path, args: Args) -> anyhow::Result<()> {
    let state = State::open(env)?;
    let here = match config::load(dir, env) {
        Ok(c) => Some(c),
        // A malformed dockwarm.toml is said, even with --all-projects.
        Err(e @ config::ConfigError::Toml { .. }) => return Err(e.into()),
        Err(_) => None,
    };
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
    let budget_override = match args.budget.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            disk::parse_size(text).map_err(|e| config::ConfigError::Invalid {
                path: "--budget".into(),
                message: e.to_string(),
            })?,
        ),
    };
    let options = cleanup::Options {
        projects: projects.clone(),
        budget: args.budget.is_some(),
        budget_override,
        older_than: args.older_than,
        dry_run: args.dry_run,
    };
    let rt = super::runtime()?;
    rt.block_on(async {
        let engine = super::connect(&state).await?;
        let report = cleanup::maintain(&engine, &state, &options).await?;
        if options.budget {
            return print_report(&report, &args);
        }
        if !args.json {
            print_orphans(&report, &args);
        }
        let images = prune::list(&engine, projects.as_ref()).await?;
        let used =
            prune::used_fingerprints(&engine, &state, &registry::list(&state), projects.as_ref()).await;
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
                "vanished": report.vanished,
                "orphans": report.orphans,
                "orphans_failed": report.orphans_failed,
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

fn print_orphans(report: &cleanup::Report, args: &Args) {
    for path in &report.vanished {
        println!(
            "unregistered {} (its directory is gone); its image tags are removed",
            path.display()
        );
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for tag in &report.orphans.tags {
        if !report.orphans_failed.iter().any(|(t, _)| t == tag) {
            println!("{verb} {tag} (its workspace is no longer registered)");
        }
    }
    for id in &report.orphans.untagged {
        if !report.orphans_failed.iter().any(|(t, _)| t == id) {
            let short = id.trim_start_matches("sha256:");
            println!(
                "{verb} untagged image {} (dockwarm's, left without a name by a rebuild)",
                &short[..12.min(short.len())]
            );
        }
    }
    for (name, e) in &report.orphans_failed {
        println!("left    {name} ({e})");
    }
}

/// `prune --budget`: what the daemon runs after each build and hourly.
fn print_report(report: &cleanup::Report, args: &Args) -> anyhow::Result<()> {
    let failed = report.orphans_failed.len()
        + report
            .projects
            .iter()
            .map(|p| p.failed.len())
            .sum::<usize>();
    if args.json {
        super::print_json(report)?;
    } else {
        let acted = !report.errors.is_empty()
            || !report.vanished.is_empty()
            || !report.orphans.tags.is_empty()
            || !report.orphans.untagged.is_empty()
            || report.projects.iter().any(|p| !p.removed.is_empty())
            || report.builder_freed.is_some()
            || failed > 0;
        if !args.quiet || acted {
            print_orphans(report, args);
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            for p in &report.projects {
                for r in &p.removed {
                    println!("{verb} {r} (least recently used, over the budget)");
                }
                for (name, e) in &p.failed {
                    println!("left    {name} ({e})");
                }
                let state = if p.after <= p.budget {
                    "under"
                } else {
                    "OVER (everything left is in use)"
                };
                println!(
                    "{}: {} of dockwarm's images ({} image(s)), budget {} ({}): {state}{}",
                    p.project,
                    disk::human(p.after),
                    p.images - if args.dry_run { 0 } else { p.removed.len() },
                    disk::human(p.budget),
                    p.budget_from,
                    if p.before != p.after {
                        format!(" (was {})", disk::human(p.before))
                    } else {
                        String::new()
                    }
                );
            }
            if let Some(freed) = report.builder_freed {
                println!(
                    "builder cache: {} freed by its keep-storage prune ([prune] builder_budget)",
                    disk::human(freed)
                );
            }
            if let Some(e) = &report.builder_error {
                println!("builder cache: not pruned: {e}");
            }
            for e in &report.errors {
                println!("{e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} image(s) or tag(s) could not be removed (see above)");
    }
    Ok(())
}
