//! `dockwarm archive`: a workspace is going away (Conductor deletes its directory next).
//!
//! Removes the compose-name tags dockwarm made for this workspace and its registration; keeps
//! the shared volumes and the dependency images other workspaces use. When the engine is down
//! the tag removal is recorded and finished by the next dockwarm that reaches the engine. The
//! workspace is marked archived: the hooks, shared by all worktrees, leave it alone (no new
//! registration, no tags) until `dockwarm init` runs there again.

use std::path::Path;
use std::time::Duration;

use crate::pending::{self, Cleanup};
use crate::registry;
use crate::state::State;
use crate::workspace::Workspace;

/// Runs `dockwarm archive` in the workspace holding `dir`: marks it archived first, removes its
/// tags (or records them for later when the engine does not answer within 5 s) and unregisters it.
pub fn run(env: &crate::env::Env, dir: &Path) -> anyhow::Result<()> {
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    // First: a git command here meanwhile (the hooks are shared by all worktrees) must not
    // register it again, nor have the daemon tag what is being removed.
    registry::mark_archived(&state, &ws.root)?;
    let record = registry::get(&state, &ws.root);
    let mut tags: Vec<String> = record
        .as_ref()
        .map(|r| r.images.values().flat_map(|i| i.tags.clone()).collect())
        .unwrap_or_default();
    // The tags compose would use now, in case a build tagged them after the last record.
    if let Ok(config) = crate::config::resolve(&ws, env) {
        tags.extend(config.images.iter().flat_map(|i| i.compose_tags.clone()));
    }
    tags.sort();
    tags.dedup();
    let workspace = ws.root.display().to_string();

    let rt = super::runtime()?;
    let outcome = rt.block_on(async {
        let engine = tokio::time::timeout(Duration::from_secs(5), super::connect(&state)).await;
        let engine = match engine {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the engine did not answer within 5 s".to_string()),
        };
        let mut removed = Vec::new();
        let mut left = Vec::new();
        for tag in &tags {
            match pending::remove_tag(&engine, tag).await {
                Ok(true) => removed.push(tag.clone()),
                Ok(false) => {}
                Err(_) => left.push(tag.clone()),
            }
        }
        Ok((removed, left))
    });
    let owed = match outcome {
        Ok((removed, left)) => {
            println!("removed {} image tag(s){}", removed.len(), list(&removed));
            left
        }
        Err(reason) => {
            println!("engine unreachable ({reason}); the tags are removed the next time dockwarm reaches it");
            tags
        }
    };
    if !owed.is_empty() {
        pending::record(
            &state,
            &Cleanup {
                workspace,
                tags: owed,
            },
        )?;
    }
    registry::remove(&state, &ws.root)?;
    println!(
        "unregistered {}; shared volumes and dependency images are kept; git commands here no longer rebuild or tag anything until `dockwarm init`",
        ws.root.display()
    );
    Ok(())
}

fn list(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!(": {}", tags.join(", "))
    }
}
