//! Keeping dockwarm's images from outliving their use, without anyone asking.
//!
//! - A workspace whose directory vanished (`git worktree remove`, `wt remove`, Conductor
//!   deleting a workspace whose archive step failed) is treated as archived: its tags are owed
//!   through [`crate::pending`], exactly as `archive` owes them when the engine is down, and
//!   removed by the next dockwarm that reaches the engine.
//! - [`orphans`]: tags of dockwarm's workspace images that no registered workspace claims
//!   (a workspace that went before its tags were recorded), and dockwarm-labelled images left
//!   without any tag when a rebuild moved their names to a newer image.
//! - [`maintain`]: both, then each project's disk budget ([`crate::disk`]) and, only when the
//!   user opted in, the BuildKit cache's. The daemon runs it (as `dockwarm prune --budget`)
//!   after each build and hourly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::RemoveImageOptions;
use serde::Serialize;

use crate::disk::{self, EngineImage, Item, Layers};
use crate::engine::{is_not_found, labels, Engine, EngineError};
use crate::pending::{self, Cleanup};
use crate::registry;
use crate::state::{now_secs, State, StateError};

/// A registered workspace's directory is gone: owe the removal of the tags dockwarm made for
/// it and unregister it. Needs no engine. Returns the tags owed.
pub fn vanished(state: &State, path: &Path) -> Result<Vec<String>, StateError> {
    let mut tags: Vec<String> = registry::get(state, path)
        .map(|r| r.images.values().flat_map(|i| i.tags.clone()).collect())
        .unwrap_or_default();
    tags.sort();
    tags.dedup();
    if !tags.is_empty() {
        pending::record(
            state,
            &Cleanup {
                workspace: path.display().to_string(),
                tags: tags.clone(),
            },
        )?;
    }
    registry::remove(state, path)?;
    Ok(tags)
}

/// [`vanished`] for every registered workspace whose directory is gone; returns their paths.
pub fn forget_vanished(state: &State) -> Vec<PathBuf> {
    let mut gone = Vec::new();
    for ws in registry::list(state) {
        if !ws.path.is_dir() && vanished(state, &ws.path).is_ok() {
            gone.push(ws.path);
        }
    }
    gone
}

/// The projects this state directory knows: those of registered workspaces and of builds it
/// recorded. Maintenance never looks past them: another user's (or another state directory's)
/// images on a shared engine are not this dockwarm's to judge.
pub fn known_projects(state: &State) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = registry::list(state)
        .into_iter()
        .map(|w| w.project)
        .collect();
    let builds = state.root().join("builds");
    for entry in std::fs::read_dir(builds).into_iter().flatten().flatten() {
        if let Some(r) = crate::state::read_json::<crate::state::BuildRecord>(&entry.path()) {
            out.insert(r.project);
        }
    }
    out
}

fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// What [`orphans`] found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Orphans {
    /// Tags of workspace images that no registered workspace claims.
    pub tags: Vec<String>,
    /// IDs of dockwarm-labelled images without any tag.
    pub untagged: Vec<String>,
}

/// The image names registered workspaces hold.
#[derive(Debug, Default)]
pub struct Claims {
    /// Recorded after their builds, and the compose names their configuration gives now (a
    /// build tags before its record is written).
    exact: HashSet<String>,
    /// For a workspace whose configuration does not resolve now: anything starting with its
    /// compose project and `-` or `_` (broad, so nothing of it goes by mistake).
    prefixes: Vec<String>,
    /// The registered workspaces' paths.
    paths: HashSet<PathBuf>,
}

impl Claims {
    /// Reads each registered workspace's record and, from its directory, its configuration
    /// (resolved in `env`).
    pub fn of(env: &crate::env::Env, registered: &[registry::Workspace]) -> Claims {
        let mut c = Claims::default();
        for w in registered {
            c.paths.insert(w.path.clone());
            c.exact.extend(
                w.images
                    .values()
                    .flat_map(|i| i.tags.iter().map(|t| with_tag(t))),
            );
            let resolved = crate::workspace::Workspace::discover(&w.path)
                .map_err(crate::config::ConfigError::from)
                .and_then(|ws| crate::config::resolve(&ws, env));
            match resolved {
                Ok(config) => c.exact.extend(
                    config
                        .images
                        .iter()
                        .flat_map(|i| i.compose_tags.iter().map(|t| with_tag(t))),
                ),
                Err(_) => c.prefixes.extend([
                    format!("{}-", w.compose_project),
                    format!("{}_", w.compose_project),
                ]),
            }
        }
        c
    }

    fn holds(&self, tag: &str) -> bool {
        self.exact.contains(&with_tag(tag))
            || self.prefixes.iter().any(|p| tag.starts_with(p.as_str()))
    }
}

/// Decides which tags and untagged images nobody needs: tags of dockwarm's workspace images
/// that no registered workspace [`Claims`], and dockwarm-labelled images without a tag. Images
/// a container was made from are never touched; nor is anything without dockwarm's label, nor
/// dependency images' tags (the budget and `keep` decide those).
///
/// An unclaimed tag goes only when the workspace the image was built for (its
/// `dev.dockwarm.workspace` label) is gone (`exists` says no) or is registered here: a
/// workspace still on disk but registered in another state directory (`DOCKWARM_STATE_DIR`
/// for tests, another user on a shared engine) keeps its names.
pub fn orphans(
    images: &[EngineImage],
    claims: &Claims,
    containers: &HashMap<String, String>,
    projects: Option<&BTreeSet<String>>,
    exists: &dyn Fn(&Path) -> bool,
) -> Orphans {
    let claimed = |tag: &str| claims.holds(tag);
    let abandoned = |image: &EngineImage| {
        image.workspace().is_some_and(|w| {
            let w = Path::new(w);
            claims.paths.contains(w) || !exists(w)
        })
    };
    let mut out = Orphans::default();
    for image in images {
        if !image.managed() || containers.contains_key(&image.id) {
            continue;
        }
        if projects.is_some_and(|p| !image.project().is_some_and(|x| p.contains(x))) {
            continue;
        }
        if image.tags.is_empty() {
            out.untagged.push(image.id.clone());
        } else if abandoned(image) {
            out.tags
                .extend(image.tags.iter().filter(|t| !claimed(t)).cloned());
        }
    }
    out
}

/// Removes one name (or an untagged image by ID) without force: the engine refuses an image a
/// container uses, should one have started meanwhile. Ok(false): it was gone already.
pub async fn remove_name(engine: &Engine, name: &str) -> Result<bool, String> {
    let options = RemoveImageOptions {
        force: false,
        noprune: false,
        ..Default::default()
    };
    match engine.docker.remove_image(name, Some(options), None).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(e.to_string().lines().next().unwrap_or_default().to_string()),
    }
}

/// How often the daemon's upkeep measures (and, when opted in, prunes) BuildKit's cache.
pub const BUILDER_EVERY: Duration = Duration::from_secs(15 * 60);

/// How the maintenance runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only these projects (all that this state directory knows when None; never others).
    pub projects: Option<BTreeSet<String>>,
    /// Enforce the budgets (else only vanished workspaces and orphans).
    pub budget: bool,
    /// A budget for every project in scope, overriding the configured ones.
    pub budget_override: Option<u64>,
    /// Never remove for the budget an image younger than this.
    pub older_than: Option<Duration>,
    /// Decide and report, remove nothing (`doctor`, `prune --dry-run`); also measures the
    /// BuildKit cache now, whenever it was last measured.
    pub dry_run: bool,
}

/// One project's budget outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectReport {
    /// The dockwarm project (label `dev.dockwarm.project`) whose images these are.
    pub project: String,
    /// The budget enforced, in bytes.
    pub budget: u64,
    /// Where that budget came from (a file and key, the default, or `--budget`), for the user
    /// who wonders why it is this one.
    pub budget_from: String,
    /// Unique bytes before and after.
    pub before: u64,
    /// With a dry run, what would be left if every removal succeeded.
    pub after: u64,
    /// How many dockwarm images the project had before any removal.
    pub images: usize,
    /// Removed (or, dry run, to remove), least recently used first: tags (or the ID if none).
    pub removed: Vec<String>,
    /// Removals the engine refused.
    pub failed: Vec<(String, String)>,
}

/// What one [`maintain`] did (or, dry run, would do): what `prune --budget` prints.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Registered workspaces whose directory was gone: unregistered, their tags owed.
    pub vanished: Vec<PathBuf>,
    /// Tags that earlier archives owed and this run removed (none on a dry run).
    pub owed_tags_removed: usize,
    /// The orphaned tags and untagged images found (removed unless a dry run).
    pub orphans: Orphans,
    /// Orphans the engine refused to remove: the name and the engine's reason.
    pub orphans_failed: Vec<(String, String)>,
    /// Each project's budget outcome (empty without [`Options::budget`]).
    pub projects: Vec<ProjectReport>,
    /// The BuildKit cache, when measured this run (on a dry run, or when the last measurement
    /// is [`BUILDER_EVERY`] old), as left by an opted-in prune.
    pub builder: Option<disk::BuilderUsage>,
    /// Bytes the engine reported freed by an opted-in builder prune.
    pub builder_freed: Option<u64>,
    /// Why the opted-in builder prune failed.
    pub builder_error: Option<String>,
    /// Projects whose budget could not be read (the message names the file and line).
    pub errors: Vec<String>,
}

/// The budget, `keep` and builder budget of a project: from a registered workspace of it that
/// still resolves (its dockwarm.toml), else the user's config.
fn project_settings(
    env: &crate::env::Env,
    project: &str,
    registered: &[registry::Workspace],
) -> Result<Settings, crate::config::ConfigError> {
    for ws in registered.iter().filter(|w| w.project == project) {
        let resolved = crate::workspace::Workspace::discover(&ws.path)
            .map_err(crate::config::ConfigError::from)
            .and_then(|w| crate::config::resolve(&w, env));
        match resolved {
            Ok(c) => {
                return Ok(Settings {
                    bytes: c.prune_budget.value,
                    from: c.prune_budget.from.to_string(),
                    builder: c.builder_budget.value,
                    keep: c.prune_keep.value as usize,
                })
            }
            // A malformed budget must be said, not replaced by a default silently.
            Err(e @ crate::config::ConfigError::Toml { .. }) => return Err(e),
            Err(_) => continue,
        }
    }
    let user = crate::config::user_prune(env)?;
    Ok(Settings {
        bytes: user.budget.value,
        from: user.budget.from.to_string(),
        builder: user.builder_budget.value,
        keep: 3,
    })
}

struct Settings {
    bytes: u64,
    from: String,
    builder: Option<u64>,
    keep: usize,
}

/// Vanished workspaces, orphans, then (with `options.budget`) each project's budget and the
/// opted-in builder budget. Errors only when the engine fails; a refused removal is reported.
pub async fn maintain(
    engine: &Engine,
    state: &State,
    options: &Options,
) -> Result<Report, MaintainError> {
    let mut report = Report {
        vanished: forget_vanished(state),
        ..Default::default()
    };
    if !options.dry_run {
        report.owed_tags_removed = pending::flush(state, engine).await;
    }
    let registered = registry::list(state);
    let containers = crate::prune::container_images(engine)
        .await
        .map_err(|e| MaintainError::Engine(e.to_string()))?;
    let known = known_projects(state);
    let scope: BTreeSet<String> = match &options.projects {
        Some(p) => p.intersection(&known).cloned().collect(),
        None => known,
    };
    let scope = Some(&scope);

    let images = disk::images(engine).await?;
    report.orphans = orphans(
        &images,
        &Claims::of(state.env(), &registered),
        &containers,
        scope,
        &|p: &Path| p.is_dir(),
    );
    if !options.dry_run {
        let names = report
            .orphans
            .tags
            .iter()
            .chain(&report.orphans.untagged)
            .cloned()
            .collect::<Vec<_>>();
        for name in names {
            if let Err(e) = remove_name(engine, &name).await {
                report.orphans_failed.push((name, e));
            }
        }
    }
    if !options.budget {
        return Ok(report);
    }

    let images = if options.dry_run {
        let gone: HashSet<&String> = report.orphans.untagged.iter().collect();
        let untag: HashSet<&String> = report.orphans.tags.iter().collect();
        images
            .into_iter()
            .filter(|i| !gone.contains(&i.id))
            .map(|mut i| {
                i.tags.retain(|t| !untag.contains(t));
                i
            })
            .filter(|i| !(i.tags.is_empty() && i.workspace().is_some()))
            .collect()
    } else {
        disk::images(engine).await?
    };
    let projects: BTreeSet<String> = images
        .iter()
        .filter(|i| i.managed())
        .filter_map(|i| i.project().map(str::to_string))
        .filter(|p| scope.is_some_and(|s| s.contains(p)))
        .collect();
    let used = crate::prune::used_fingerprints(engine, state, &registered, Some(&projects)).await;
    let layers = disk::layers(engine, state, &images, &|i| i.managed()).await;
    let stamps = disk::stamps(state);
    let now = now_secs() as i64;
    let mut protected: BTreeSet<String> = BTreeSet::new();
    let mut builder_budget: Option<u64> = None;
    let mut snapshot = disk::Snapshot {
        measured_at: now as u64,
        ..Default::default()
    };

    for project in &projects {
        // One project's malformed dockwarm.toml must not stop the others' upkeep.
        let budget = match project_settings(state.env(), project, &registered) {
            Ok(b) => b,
            Err(e) => {
                report
                    .errors
                    .push(format!("{project}: budget not enforced: {e}"));
                continue;
            }
        };
        let keep = budget.keep;
        let budget_bytes = options.budget_override.unwrap_or(budget.bytes);
        if let Some(b) = budget.builder {
            builder_budget = Some(builder_budget.map_or(b, |x| x.min(b)));
        }
        let mine: Vec<&EngineImage> = images
            .iter()
            .filter(|i| i.managed() && i.project() == Some(project.as_str()))
            .collect();
        let ids: HashSet<&str> = mine.iter().map(|i| i.id.as_str()).collect();
        let others: Vec<&Layers> = images
            .iter()
            .filter(|i| !ids.contains(i.id.as_str()))
            .filter_map(|i| layers.get(&i.id))
            .collect();
        // The `keep` newest unused dependency images of each image go last.
        let mut by_image: BTreeMap<&str, Vec<&EngineImage>> = BTreeMap::new();
        let mut items = Vec::new();
        for image in &mine {
            let fp = image
                .labels
                .get(labels::FINGERPRINT)
                .cloned()
                .unwrap_or_default();
            let repo = format!(
                "{}:",
                crate::fingerprint::repository(
                    project,
                    image
                        .labels
                        .get(labels::IMAGE)
                        .map(String::as_str)
                        .unwrap_or("")
                )
            );
            let all_ours =
                !image.tags.is_empty() && image.tags.iter().all(|t| t.starts_with(&repo));
            let in_use = used.contains(&fp) && image.workspace().is_none()
                || image.workspace().is_some()
                || containers.contains_key(&image.id);
            let young = options
                .older_than
                .is_some_and(|age| now - image.created < age.as_secs() as i64);
            if in_use {
                protected.insert(image.id.clone());
            }
            let removable = !in_use && all_ours && !young;
            if removable {
                by_image
                    .entry(
                        image
                            .labels
                            .get(labels::IMAGE)
                            .map(String::as_str)
                            .unwrap_or(""),
                    )
                    .or_default()
                    .push(image);
            }
            let last_used = [
                image.created,
                stamps.get(&image.id).copied().unwrap_or(0),
                if in_use { now } else { 0 },
            ]
            .into_iter()
            .max()
            .unwrap_or(0);
            items.push(Item {
                id: image.id.clone(),
                tags: image.tags.clone(),
                removable,
                soft_keep: false,
                last_used,
                layers: layers.get(&image.id).cloned().unwrap_or_else(|| Layers {
                    keys: vec![image.id.clone()],
                    sizes: vec![image.size],
                }),
            });
        }
        let mut soft: HashSet<String> = HashSet::new();
        for group in by_image.values_mut() {
            group.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
            soft.extend(group.iter().take(keep).map(|i| i.id.clone()));
        }
        for item in &mut items {
            item.soft_keep = soft.contains(&item.id);
        }
        let plan = disk::plan_budget(&items, &others, budget_bytes);
        let mut pr = ProjectReport {
            project: project.clone(),
            budget: budget_bytes,
            budget_from: if options.budget_override.is_some() {
                "--budget".into()
            } else {
                budget.from.clone()
            },
            before: plan.before,
            after: plan.after,
            images: items.len(),
            removed: Vec::new(),
            failed: Vec::new(),
        };
        let mut gone: HashSet<String> = HashSet::new();
        for id in &plan.remove {
            let Some(item) = items.iter().find(|i| &i.id == id) else {
                continue;
            };
            let shown = item.tags.join(", ");
            if options.dry_run {
                pr.removed.push(shown);
                continue;
            }
            let mut ok = true;
            for tag in &item.tags {
                if let Err(e) = remove_name(engine, tag).await {
                    pr.failed.push((tag.clone(), e));
                    ok = false;
                }
            }
            if ok {
                gone.insert(id.clone());
                pr.removed.push(shown);
            }
        }
        if !options.dry_run {
            pr.after = disk::unique_bytes(
                items
                    .iter()
                    .filter(|i| !gone.contains(&i.id))
                    .map(|i| &i.layers),
                others.iter().copied(),
            );
        }
        snapshot.projects.insert(
            project.clone(),
            // A dry run measures what is there now.
            disk::ProjectUsage {
                used: if options.dry_run { pr.before } else { pr.after },
                budget: budget_bytes,
                images: items.len() - gone.len(),
            },
        );
        report.projects.push(pr);
    }
    if !options.dry_run {
        let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        disk::stamp(state, &protected, &present);
    }

    // The builder cache: `/system/df` walks every cache record (and blocks while a build
    // exports), so it is measured at most every BUILDER_EVERY, or when asked (a dry run:
    // `doctor`, `prune --dry-run`); pruned only when the user opted in.
    let stale = disk::snapshot(state)
        .and_then(|s| s.builder_measured_at)
        .is_none_or(|at| now as u64 >= at + BUILDER_EVERY.as_secs());
    if options.dry_run || stale {
        // The same answer gives the volumes' sizes, which `status` shows from the snapshot.
        if let Some((builder, volumes)) = disk::df_usage(engine).await {
            report.builder = Some(builder);
            snapshot.volumes = volumes;
            snapshot.volumes_measured_at = Some(now as u64);
        }
        if let (Some(keep), false) = (builder_budget, options.dry_run) {
            if report.builder.as_ref().is_none_or(|b| b.size > keep) {
                match disk::prune_builder(engine, keep).await {
                    Ok(freed) => {
                        report.builder_freed = Some(freed);
                        report.builder = disk::builder_usage(engine).await;
                    }
                    Err(e) => report.builder_error = Some(e.to_string()),
                }
            }
        }
        snapshot.builder_measured_at = report.builder.as_ref().map(|_| now as u64);
        snapshot.builder = report.builder.clone();
    }
    disk::save_snapshot(state, snapshot);
    Ok(report)
}

/// Why [`maintain`] stopped: only the engine failing stops it; refused removals and
/// unreadable budgets are reported in the [`Report`] instead.
#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    /// Listing images or containers failed; the engine's message.
    #[error("{0}")]
    Engine(String),
}

impl From<EngineError> for MaintainError {
    fn from(e: EngineError) -> Self {
        MaintainError::Engine(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], workspace: Option<&str>) -> EngineImage {
        let mut labels = BTreeMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), "p".to_string()),
        ]);
        if let Some(w) = workspace {
            labels.insert(labels::WORKSPACE.to_string(), w.to_string());
        }
        EngineImage {
            id: id.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            labels,
            created: 0,
            size: 1,
        }
    }

    fn ws(compose_project: &str, tags: &[&str]) -> registry::Workspace {
        registry::Workspace {
            name: compose_project.into(),
            path: PathBuf::from(format!("/w/{compose_project}")),
            project: "p".into(),
            compose_project: compose_project.into(),
            registered_at: 0,
            engine: None,
            images: BTreeMap::from([(
                "app".to_string(),
                registry::ImageSeen {
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    ..Default::default()
                },
            )]),
        }
    }

    #[test]
    fn unclaimed_workspace_tags_and_untagged_images_are_orphans() {
        let images = vec![
            // Built for a, reused (tagged) for b; a is gone.
            image(
                "i1",
                &["a-app:latest", "a_app:latest", "b-app:latest"],
                Some("/w/a"),
            ),
            // An explicit compose `image:` name b recorded.
            image("i2", &["myapp:dev"], Some("/w/b")),
            // A dependency image: never an orphan by tag.
            image("i3", &["dockwarm/p-app-deps:abc"], None),
            // Untagged: one a container uses, one not.
            image("i4", &[], Some("/w/b")),
            image("i5", &[], None),
            // Not ours.
            EngineImage {
                labels: BTreeMap::new(),
                ..image("i6", &["a-app:old"], None)
            },
        ];
        // b is registered; its directory does not exist here, so its compose project's prefix
        // claims too ("b-app"), beside what it recorded.
        let registered = vec![ws("b", &["myapp:dev"])];
        let claims = Claims::of(&crate::env::Env::default(), &registered);
        let containers = HashMap::from([("i4".to_string(), "c".to_string())]);
        let gone = |p: &Path| p != Path::new("/w/b");
        let o = orphans(&images, &claims, &containers, None, &|p| !gone(p));
        assert_eq!(o.tags, vec!["a-app:latest", "a_app:latest"]);
        assert_eq!(o.untagged, vec!["i5"]);
        // a still on disk but not registered here (another state directory's): kept.
        let o = orphans(&images, &claims, &containers, None, &|_| true);
        assert!(o.tags.is_empty(), "{o:?}");
        // Another project's scope sees nothing.
        let o = orphans(
            &images,
            &claims,
            &containers,
            Some(&BTreeSet::from(["q".to_string()])),
            &|_| false,
        );
        assert!(o.tags.is_empty() && o.untagged.is_empty());
    }

    #[test]
    fn a_vanished_workspace_owes_its_recorded_tags_and_is_unregistered() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::at(dir.path());
        let mut w = ws("gone", &["gone-app", "gone_app"]);
        w.path = dir.path().join("no-such-dir");
        registry::put(&state, &w).unwrap();
        let kept = ws("here", &[]);
        let mut kept = kept;
        kept.path = dir.path().to_path_buf();
        registry::put(&state, &kept).unwrap();
        assert_eq!(forget_vanished(&state), vec![w.path.clone()]);
        assert_eq!(registry::list(&state).len(), 1);
        assert_eq!(pending::count(&state), 1);
        // Owed again (an archive that could not reach the engine): merged, not replaced.
        pending::record(
            &state,
            &Cleanup {
                workspace: w.path.display().to_string(),
                tags: vec!["gone-worker".into()],
            },
        )
        .unwrap();
        let file = state
            .dir("pending")
            .unwrap()
            .join(format!("{}.json", registry::id(&w.path)));
        let owed: Cleanup = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        assert_eq!(owed.tags, vec!["gone-app", "gone-worker", "gone_app"]);
    }
}
