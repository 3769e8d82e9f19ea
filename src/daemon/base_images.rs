//! Base images changed under their tag: a `docker pull`, `docker tag`, `docker load` or
//! `docker import` gives a workspace's `FROM` image a new ID, which changes every fingerprint
//! built on it, although no file changed and no hook fires.
//!
//! One task per engine (the engine each workspace's user builds on) follows the engine's image
//! events on the daemon's runtime. On any image event, and after each (re)connection (events
//! are lost while the engine is away), it looks up the IDs of the references the daemon is
//! interested in and reports those whose ID changed; the daemon's loop then rebuilds the
//! workspaces that use them. The loop never waits on the engine for this: it sends the
//! references it cares about and receives the ones that moved. When the engine goes away the
//! task tries again with a growing pause (1 s doubling to 30 s).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::engine::{self, Engine, EngineEnv};
use crate::env::Env;

/// Longest pause between two tries to reach an engine that went away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one image lookup may take before it counts as unanswered (tried again later).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts following `env`'s engine (`~/.docker` from `home`'s `HOME`). Send it the full set of references to look after (each
/// time it changes); `changed` receives those whose image ID moved. The task ends when the
/// returned sender is dropped.
pub fn spawn(
    env: EngineEnv,
    home: Env,
    changed: impl Fn(Vec<String>) + Send + Sync + 'static,
) -> mpsc::UnboundedSender<BTreeSet<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(follow(env, home, rx, changed));
    tx
}

async fn follow(
    env: EngineEnv,
    home: Env,
    mut interest_rx: mpsc::UnboundedReceiver<BTreeSet<String>>,
    changed: impl Fn(Vec<String>) + Send + Sync + 'static,
) {
    let mut interest = BTreeSet::new();
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    let mut backoff = Duration::from_secs(1);
    loop {
        let connected = match engine::resolve_endpoint_in(&env, &home) {
            Ok(endpoint) => {
                tokio::time::timeout(Duration::from_secs(6), Engine::connect_to(endpoint))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        if let Some(engine) = connected {
            backoff = Duration::from_secs(1);
            let filters = HashMap::from([("type".to_string(), vec!["image".to_string()])]);
            let mut events = engine
                .docker
                .events(Some(bollard::query_parameters::EventsOptions {
                    filters: Some(filters),
                    ..Default::default()
                }));
            // Whatever moved while the engine was away (or before the stream started).
            report(&engine, &interest, &mut known, &changed).await;
            loop {
                tokio::select! {
                    update = interest_rx.recv() => match update {
                        None => return,
                        Some(set) => {
                            interest = set;
                            report(&engine, &interest, &mut known, &changed).await;
                        }
                    },
                    event = events.next() => match event {
                        Some(Ok(_)) => report(&engine, &interest, &mut known, &changed).await,
                        Some(Err(_)) | None => break,
                    },
                }
            }
        }
        // Away: wait, still taking what the daemon asks for.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                update = interest_rx.recv() => match update {
                    None => return,
                    Some(set) => interest = set,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Looks up each reference's ID and reports those that now name another image than when last
/// seen (a reference seen for the first time is only remembered: the evaluation that made it
/// interesting fingerprinted it with its current ID).
async fn report(
    engine: &Engine,
    interest: &BTreeSet<String>,
    known: &mut HashMap<String, Option<String>>,
    changed: &impl Fn(Vec<String>),
) {
    known.retain(|r, _| interest.contains(r));
    let mut moved = Vec::new();
    for reference in interest {
        let Ok(Ok(id)) = tokio::time::timeout(LOOKUP_TIMEOUT, engine.image_id(reference)).await
        else {
            continue;
        };
        let before = known.insert(reference.clone(), id.clone());
        if id.is_some() && before.is_some_and(|b| b != id) {
            moved.push(reference.clone());
        }
    }
    if !moved.is_empty() {
        changed(moved);
    }
}
