//! `dockwarm init [--print-conductor]`: the one line of a workspace's setup.
//!
//! Idempotent and quick (well under a second): installs the hooks, registers the workspace,
//! ensures the shared volumes, and hands the prebuild to the daemon (starting it if needed).
//! Never asks a question: it runs from Conductor's non-interactive setup script.

use std::path::Path;
use std::time::Duration;

use crate::config;
use crate::registry;
use crate::state::{now_secs, State};
use crate::workspace::Workspace;

const CONDUCTOR_JSON: &str = include_str!("../../templates/conductor.json");
const CONDUCTOR_TOML: &str = include_str!("../../templates/conductor-settings.toml");

/// How long `init` gives the engine to create volumes before leaving them to the background.
const ENGINE_BUDGET: Duration = Duration::from_millis(600);

/// Conductor's settings with dockwarm's lines: the repository's own files merged (their
/// scripts kept, ours added once), or the templates when it has none.
pub fn print_conductor(dir: &Path) -> anyhow::Result<()> {
    let roots = match Workspace::discover(dir) {
        Ok(ws) => vec![ws.root, ws.main_root],
        Err(_) => vec![dir.to_path_buf()],
    };
    for root in roots {
        let merged = crate::conductor::merged(&root)?;
        if merged.is_empty() {
            continue;
        }
        for m in merged {
            if m.unchanged {
                println!(
                    "# {} already runs `dockwarm init` and `dockwarm archive`; nothing to change:\n{}",
                    m.path.display(),
                    m.text
                );
            } else {
                println!(
                    "# {}, with `dockwarm init` after its setup and `dockwarm archive` before its archive script (replace the file with this):\n{}",
                    m.path.display(),
                    m.text
                );
            }
        }
        return Ok(());
    }
    println!("# conductor.json (in the repository root):\n{CONDUCTOR_JSON}");
    println!("# or .conductor/settings.toml:\n{CONDUCTOR_TOML}");
    Ok(())
}

/// Runs `dockwarm init` in the workspace holding `dir`: installs the hooks, registers it (again
/// after `archive`), ensures the shared volumes if the engine answers soon, and hands the first
/// prebuild to the daemon; fails only when that hand-off does.
pub fn run(env: &crate::env::Env, dir: &Path) -> anyhow::Result<()> {
    let ws = Workspace::discover(dir)?;
    let config = config::resolve(&ws, env)?;
    let state = State::open(env)?;

    match crate::hooks::install(&ws.root, &std::env::current_exe()?, config.ahead.hook.value) {
        Ok(report) => println!("hooks: installed in {}", report.location.dir.display()),
        Err(e) => println!("hooks: not installed: {e}"),
    }

    // `init` after `archive` brings the workspace back.
    registry::unarchive(&state, &ws.root)?;
    let previous = registry::get(&state, &ws.root);
    let record = registry::Workspace {
        name: registry::workspace_name(env, &ws.root),
        path: ws.root.clone(),
        project: config.project.value.clone(),
        compose_project: config.compose_project.value.clone(),
        registered_at: previous
            .as_ref()
            .map(|p| p.registered_at)
            .unwrap_or_else(now_secs),
        images: previous.map(|p| p.images).unwrap_or_default(),
        engine: Some(crate::engine::EngineEnv::from_env(env)),
    };
    registry::put(&state, &record)?;
    println!(
        "workspace: {} (compose project `{}`, shared project `{}`)",
        record.name, record.compose_project, record.project
    );

    let rt = super::runtime()?;
    let volumes = rt.block_on(async {
        tokio::time::timeout(ENGINE_BUDGET, async {
            let engine = super::connect(&state).await?;
            anyhow::Ok(crate::volumes::ensure(&engine, &config).await?)
        })
        .await
    });
    match volumes {
        Ok(Ok(done)) if done.is_empty() => println!("volumes: none configured"),
        Ok(Ok(done)) => {
            let names: Vec<String> = done.into_iter().map(|(n, _)| n).collect();
            println!("volumes: {} ready", names.join(", "));
        }
        Ok(Err(e)) => println!(
            "volumes: not ensured now ({}); the background prebuild retries",
            super::one_line(&e)
        ),
        Err(_) => {
            println!("volumes: the engine is slow to answer; the background prebuild ensures them")
        }
    }

    match crate::daemon::client::hand_off(&state, &ws.root, &[]) {
        Ok(handed) => println!("prebuild: {}", handed.describe(&state)),
        Err(e) => {
            // The workspace is set up; only its background prebuild is not: say so, and fail.
            println!("prebuild: not started");
            return Err(e.into());
        }
    }
    Ok(())
}
