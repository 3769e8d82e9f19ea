//! Cleanups owed to the engine: an archive that ran while Docker was down records the tags it
//! could not remove, and the next dockwarm that reaches the engine removes them.
//!
//! The hand-made archive step fired once and leaked when Docker was down; this is the fix.

use serde::{Deserialize, Serialize};

use crate::engine::{is_not_found, labels, Engine};
use crate::state::{self, State, StateError};

/// Tags owed removal for one workspace, stored as `<state>/pending/<id>.json` until an engine
/// answers; the daemon's upkeep retries while any are owed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cleanup {
    /// The workspace path the tags were made for.
    pub workspace: String,
    /// The workspace's image tags (its compose names) to untag; each only if dockwarm labelled
    /// the image.
    pub tags: Vec<String>,
}

/// Records tags owed for a workspace, added to any already owed for it (an archive that ran
/// while the engine was down, then the daemon finding the directory gone, owe both lists).
pub fn record(state: &State, cleanup: &Cleanup) -> Result<(), StateError> {
    let name = crate::registry::id(std::path::Path::new(&cleanup.workspace));
    let path = state.dir("pending")?.join(format!("{name}.json"));
    // Never wait for the lock (the daemon records on its event loop while a flush may hold it
    // for as long as the engine takes): without it, the worst case is a tag the flush drops,
    // which the orphan sweep removes anyway once the workspace is gone.
    let _guard = state.try_lock("pending").ok().flatten();
    let mut all = state::read_json::<Cleanup>(&path)
        .map(|c| c.tags)
        .unwrap_or_default();
    all.extend(cleanup.tags.iter().cloned());
    all.sort();
    all.dedup();
    state::write_json_atomic(
        &path,
        &Cleanup {
            workspace: cleanup.workspace.clone(),
            tags: all,
        },
    )
}

/// How many cleanups are waiting.
pub fn count(state: &State) -> usize {
    state
        .dir("pending")
        .ok()
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}

/// Removes the tags that earlier archives could not; returns how many were removed.
pub async fn flush(state: &State, engine: &Engine) -> usize {
    let Ok(dir) = state.dir("pending") else {
        return 0;
    };
    let Ok(_guard) = state.lock("pending") else {
        return 0;
    };
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
    {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Some(cleanup) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cleanup>(&b).ok())
        else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        let mut done = true;
        for tag in &cleanup.tags {
            match remove_tag(engine, tag).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(_) => done = false,
            }
        }
        if done {
            let _ = std::fs::remove_file(&path);
        }
    }
    removed
}

/// Untags `tag`, one of the departing workspace's compose names, if dockwarm put it there;
/// never touches anything else. Ok(false): nothing to do (gone already, or not ours).
///
/// The image may have been built for another workspace with identical sources and only tagged
/// for this one, so the test is dockwarm's label, not the image's workspace label: compose
/// names are per workspace (`<workspace project>-<service>`), and only dockwarm labels images.
pub async fn remove_tag(engine: &Engine, tag: &str) -> Result<bool, bollard::errors::Error> {
    let image = match engine.docker.inspect_image(tag).await {
        Ok(i) => i,
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    let l = image.config.and_then(|c| c.labels).unwrap_or_default();
    let ours = l.get(labels::MANAGED).map(String::as_str) == Some("true")
        && l.contains_key(labels::PROJECT);
    if !ours {
        return Ok(false);
    }
    // Force only un-tags: a container of the departing workspace keeps its image, and other
    // tags of the same image stay.
    let options = bollard::query_parameters::RemoveImageOptions {
        force: true,
        noprune: false,
        ..Default::default()
    };
    match engine.docker.remove_image(tag, Some(options), None).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
