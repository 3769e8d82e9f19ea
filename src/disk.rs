//! The disk dockwarm's images use, and the budget that bounds it.
//!
//! **What is counted.** The unique bytes of the layers of a project's dockwarm images (a layer
//! shared by ten of them counts once), leaving out layers that any image outside the project
//! also holds (the base image is the user's: removing dockwarm's images would never free it).
//! That is exactly what removing every dockwarm image of the project could give back.
//!
//! **Where layer sizes come from.** The engine's own layer store, through two cheap calls per
//! image: `GET /images/{id}/json` gives the layers' diff IDs (`RootFS.Layers`, from which the
//! chain IDs that name stored layers follow), and `GET /images/{id}/history` gives each
//! non-empty history entry's `Size`, which the engine computes as that layer's `DiffSize`.
//! `/system/df` would give per-image shared sizes but not per layer, and on Engine 20.10 it
//! blocks for tens of seconds while a build exports; it is used only for the BuildKit cache
//! (see [`builder_usage`]), with a timeout. History entries do not say which ones are empty
//! layers, so entries are matched to layers by size and instruction (`ENV`, `LABEL`, `CMD`...
//! make none); when that does not add up to the image's layer count, the layers after the
//! first doubt are counted as the image's own (over-counting a little, never under-counting).
//! Both answers are keyed by image ID, which names immutable content, so they are cached in
//! the state directory and each image is asked about once.
//!
//! **What goes first.** Least recently used: an image's last use is the latest of its creation,
//! its last tagging, and the last time dockwarm saw it protected (a registered workspace's
//! current fingerprint, or a container's image). [`plan_budget`] is a pure function so the
//! rules are tested without an engine.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bollard::query_parameters::ListImagesOptions;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::{labels, Engine, EngineError};
use crate::state::{self, now_secs, State};

/// The default budget when neither dockwarm.toml nor the user's config names one. See README.
pub const DEFAULT_BUDGET: u64 = 20_000_000_000;
/// [`DEFAULT_BUDGET`] as a user would write it, to say where a budget came from.
pub const DEFAULT_BUDGET_TEXT: &str = "20GB";
/// How often the daemon enforces the budget when nothing is built.
pub const ENFORCE_EVERY: Duration = Duration::from_secs(3600);
/// Longest wait for `/system/df` (it can block while a build exports layers).
pub const DF_TIMEOUT: Duration = Duration::from_secs(10);

/// A budget (config or `--budget`) that [`parse_size`] cannot read; carries the text as given.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a size; use a number and a unit: 500MB, 20GB, 1.5TB (powers of 1000) or 20GiB (powers of 1024)")]
pub struct BadSize(pub String);

/// `500MB`, `20GB`, `1.5TB`, `20GiB`, `20 GB`, `0`; units are case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, BadSize> {
    let bad = || BadSize(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "" if n == 0.0 => 1.0,
        "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = n * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// Decimal units, as the budget is written (`20GB`): what `status` shows beside it.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One image on the engine, as the listing gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineImage {
    /// The image ID (`sha256:...`): the key of the layer cache and of last-use stamps.
    pub id: String,
    /// Its names; empty for an untagged image.
    pub tags: Vec<String>,
    /// Its labels, where dockwarm's say whether it made the image and for which project,
    /// image, fingerprint and workspace.
    pub labels: BTreeMap<String, String>,
    /// When it was built, in seconds since the epoch: the floor of its last use.
    pub created: i64,
    /// Its whole size in bytes, shared layers included: the fallback when its layers cannot
    /// all be sized.
    pub size: u64,
}

impl EngineImage {
    /// Whether dockwarm made it (managed and project labels): the only images the budget and
    /// orphan removal ever consider.
    pub fn managed(&self) -> bool {
        self.labels.get(labels::MANAGED).map(String::as_str) == Some("true")
            && self.labels.contains_key(labels::PROJECT)
    }
    /// The dockwarm project it was built for (its label): whose budget it counts against.
    pub fn project(&self) -> Option<&str> {
        self.labels.get(labels::PROJECT).map(String::as_str)
    }
    /// A workspace image (built for one workspace's compose names), not a dependency image.
    pub fn workspace(&self) -> Option<&str> {
        self.labels.get(labels::WORKSPACE).map(String::as_str)
    }
}

/// Every image on the engine (tagged or not; never intermediate layers).
pub async fn images(engine: &Engine) -> Result<Vec<EngineImage>, EngineError> {
    let list = engine
        .docker
        .list_images(Some(ListImagesOptions {
            all: false,
            ..Default::default()
        }))
        .await?;
    Ok(list
        .into_iter()
        .map(|s| EngineImage {
            id: s.id,
            tags: s
                .repo_tags
                .into_iter()
                .filter(|t| t != "<none>:<none>")
                .collect(),
            labels: s.labels.into_iter().collect(),
            created: s.created,
            size: s.size.max(0) as u64,
        })
        .collect())
}

/// An image's layers: a key per stored layer (its chain ID) and its size in bytes. Foreign
/// images are stored without sizes (only which layers they hold matters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Layers {
    /// Chain IDs, so images that share a layer share its key; a layer that could not be
    /// matched gets `<image id>/<n>` or `<image id>/rest`, the image's own.
    pub keys: Vec<String>,
    /// Bytes of each key, in the same order; empty for a foreign image.
    #[serde(default)]
    pub sizes: Vec<u64>,
}

/// The chain IDs of a list of diff IDs (OCI image spec:
/// ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// Instructions that never make a layer.
fn metadata_only(created_by: &str) -> bool {
    let t = created_by
        .trim()
        .trim_start_matches("/bin/sh -c #(nop)")
        .trim();
    let word = t.split_whitespace().next().unwrap_or("");
    matches!(
        word,
        "ENV"
            | "LABEL"
            | "CMD"
            | "ENTRYPOINT"
            | "EXPOSE"
            | "USER"
            | "ARG"
            | "ONBUILD"
            | "STOPSIGNAL"
            | "HEALTHCHECK"
            | "SHELL"
            | "VOLUME"
            | "MAINTAINER"
    )
}

/// Matches history entries (oldest first: size, created_by) to an image's layers. See the
/// module documentation for the rule and its fallback.
pub fn match_layers(
    image_id: &str,
    diff_ids: &[String],
    history: &[(u64, String)],
    image_size: u64,
) -> Layers {
    let chains = chain_ids(diff_ids);
    let n = chains.len();
    let layer_like: Vec<bool> = history
        .iter()
        .map(|(size, by)| *size > 0 || !metadata_only(by))
        .collect();
    if layer_like.iter().filter(|l| **l).count() == n && n > 0 {
        let sizes: Vec<u64> = history
            .iter()
            .zip(&layer_like)
            .filter(|(_, l)| **l)
            .map(|((s, _), _)| *s)
            .collect();
        return Layers {
            keys: chains,
            sizes,
        };
    }
    let nonzero: Vec<u64> = history.iter().map(|(s, _)| *s).filter(|s| *s > 0).collect();
    if nonzero.len() == n && n > 0 {
        return Layers {
            keys: chains,
            sizes: nonzero,
        };
    }
    // Doubt: the leading non-zero entries are certainly layers 1..j; the rest is this image's own.
    let mut keys = Vec::new();
    let mut sizes = Vec::new();
    let mut certain = true;
    let mut counted = 0u64;
    for (i, (size, _)) in history.iter().enumerate() {
        if *size == 0 {
            certain = false;
            continue;
        }
        if certain && keys.len() < n {
            keys.push(chains[keys.len()].clone());
        } else {
            keys.push(format!("{image_id}/{i}"));
        }
        sizes.push(*size);
        counted += size;
    }
    if counted < image_size {
        keys.push(format!("{image_id}/rest"));
        sizes.push(image_size - counted);
    }
    Layers { keys, sizes }
}

/// Layer information of images by ID, cached in the state directory (image IDs name immutable
/// content, so an entry never goes stale; entries of images gone from the engine are dropped).
pub async fn layers(
    engine: &Engine,
    state: &State,
    images: &[EngineImage],
    sized: &dyn Fn(&EngineImage) -> bool,
) -> HashMap<String, Layers> {
    let path = state.root().join("disk").join("layers.json");
    let mut cache: HashMap<String, Layers> = state::read_json(&path).unwrap_or_default();
    let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    let before = cache.len();
    cache.retain(|id, _| present.contains(id.as_str()));
    let mut changed = cache.len() != before;
    for image in images {
        let want_sizes = sized(image);
        if let Some(l) = cache.get(&image.id) {
            if !want_sizes || !l.sizes.is_empty() || l.keys.is_empty() {
                continue;
            }
        }
        let Ok(inspect) = engine.docker.inspect_image(&image.id).await else {
            continue;
        };
        let diff_ids = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
        let entry = if want_sizes {
            let history = engine
                .docker
                .image_history(&image.id)
                .await
                .unwrap_or_default();
            let oldest_first: Vec<(u64, String)> = history
                .into_iter()
                .rev()
                .map(|h| (h.size.max(0) as u64, h.created_by))
                .collect();
            match_layers(&image.id, &diff_ids, &oldest_first, image.size)
        } else {
            Layers {
                keys: chain_ids(&diff_ids),
                sizes: Vec::new(),
            }
        };
        cache.insert(image.id.clone(), entry);
        changed = true;
    }
    if changed {
        if let Ok(dir) = state.dir("disk") {
            let _ = state::write_json_atomic(&dir.join("layers.json"), &cache);
        }
    }
    cache
}

/// The unique bytes of the layers `ours` holds that no image in `others` holds.
pub fn unique_bytes<'a>(
    ours: impl IntoIterator<Item = &'a Layers>,
    others: impl IntoIterator<Item = &'a Layers>,
) -> u64 {
    let foreign: HashSet<&str> = others
        .into_iter()
        .flat_map(|l| l.keys.iter().map(String::as_str))
        .collect();
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for l in ours {
        for (k, s) in l.keys.iter().zip(&l.sizes) {
            if !foreign.contains(k.as_str()) {
                let e = seen.entry(k.as_str()).or_insert(0);
                *e = (*e).max(*s);
            }
        }
    }
    seen.values().sum()
}

/// One of a project's dockwarm images, as the budget sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// The image ID: what the plan lists for removal.
    pub id: String,
    /// Its names: the budget removes the image by untagging each, never with force.
    pub tags: Vec<String>,
    /// May the budget remove it? (Not a current fingerprint, no container, only our tags.)
    pub removable: bool,
    /// Among the `keep` newest unused of its image: removed only after every other candidate.
    pub soft_keep: bool,
    /// Seconds since the epoch.
    pub last_used: i64,
    /// What it holds, so a removal is counted only for the bytes no remaining image shares.
    #[serde(skip)]
    pub layers: Layers,
}

/// What the budget decided.
#[derive(Debug, Default, Serialize)]
pub struct BudgetPlan {
    /// The budget planned for, in bytes.
    pub budget: u64,
    /// The project's unique bytes now, before any removal.
    pub before: u64,
    /// What is left if every removal succeeds.
    pub after: u64,
    /// Least recently used first.
    pub remove: Vec<String>,
}

/// Chooses, least recently used first, the removable images to remove until the project's
/// unique bytes (not counting layers `others` hold) are at most `budget`.
pub fn plan_budget(items: &[Item], others: &[&Layers], budget: u64) -> BudgetPlan {
    let usage = |gone: &HashSet<&str>| {
        unique_bytes(
            items
                .iter()
                .filter(|i| !gone.contains(i.id.as_str()))
                .map(|i| &i.layers),
            others.iter().copied(),
        )
    };
    let before = usage(&HashSet::new());
    let mut order: Vec<&Item> = items.iter().filter(|i| i.removable).collect();
    order.sort_by(|a, b| {
        a.soft_keep
            .cmp(&b.soft_keep)
            .then(a.last_used.cmp(&b.last_used))
            .then(a.id.cmp(&b.id))
    });
    let mut gone: HashSet<&str> = HashSet::new();
    let mut now = before;
    for item in order {
        if now <= budget {
            break;
        }
        gone.insert(item.id.as_str());
        now = usage(&gone);
    }
    let mut remove: Vec<String> = items
        .iter()
        .filter(|i| gone.contains(i.id.as_str()))
        .map(|i| i.id.clone())
        .collect();
    // In the order chosen.
    remove.sort_by_key(|id| {
        items
            .iter()
            .find(|i| &i.id == id)
            .map(|i| (i.soft_keep, i.last_used))
    });
    BudgetPlan {
        budget,
        before,
        after: now,
        remove,
    }
}

/// When dockwarm last saw each image protected (in use): image ID → seconds since the epoch.
pub fn stamps(state: &State) -> HashMap<String, i64> {
    state::read_json(&state.root().join("disk").join("used.json")).unwrap_or_default()
}

/// Records `ids` as used now, and forgets images no longer on the engine.
pub fn stamp(state: &State, ids: &BTreeSet<String>, present: &HashSet<&str>) {
    let Ok(_guard) = state.lock("disk-used") else {
        return;
    };
    let mut all = stamps(state);
    all.retain(|id, _| present.contains(id.as_str()));
    let now = now_secs() as i64;
    for id in ids {
        all.insert(id.clone(), now);
    }
    if let Ok(dir) = state.dir("disk") {
        let _ = state::write_json_atomic(&dir.join("used.json"), &all);
    }
}

/// The BuildKit cache of the engine's builder: what dockwarm's builds (and everyone's) fill.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuilderUsage {
    /// Bytes of all its records, each counted once (as BuildKit's own `du` does).
    pub size: u64,
    /// Of which `RUN --mount=type=cache` directories.
    pub cache_mounts: u64,
    /// How many cache records it holds.
    pub records: usize,
}

/// The builder cache's size from `/system/df`, or None when the engine did not answer within
/// [`DF_TIMEOUT`] (it can block while a build exports layers).
pub async fn builder_usage(engine: &Engine) -> Option<BuilderUsage> {
    df_usage(engine).await.map(|(b, _)| b)
}

/// The builder cache's size and every volume's, from one `/system/df` (None: no answer within
/// [`DF_TIMEOUT`]). `status` shows the volumes' sizes from the snapshot this feeds, never
/// asking `/system/df` itself unless told to (`status --sizes`).
pub async fn df_usage(engine: &Engine) -> Option<(BuilderUsage, BTreeMap<String, u64>)> {
    let df = tokio::time::timeout(DF_TIMEOUT, engine.get_json("/system/df"))
        .await
        .ok()?
        .ok()?;
    Some((builder_usage_of(&df), volume_sizes_of(&df)))
}

/// Sizes of all volumes in a `/system/df` answer, in either of its shapes.
pub fn volume_sizes_of(df: &serde_json::Value) -> BTreeMap<String, u64> {
    let items = df
        .get("Volumes")
        .filter(|v| v.is_array())
        .or_else(|| df.pointer("/VolumeUsage/Items"))
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|v| {
            let name = v.get("Name")?.as_str()?.to_string();
            let size = v.pointer("/UsageData/Size")?.as_i64()?;
            (size >= 0).then_some((name, size as u64))
        })
        .collect()
}

/// Measures the volumes' (and the builder cache's) sizes now and keeps them in the snapshot;
/// None when `/system/df` did not answer within [`DF_TIMEOUT`].
pub async fn measure_volumes(engine: &Engine, state: &State) -> Option<BTreeMap<String, u64>> {
    let (builder, volumes) = df_usage(engine).await?;
    let now = now_secs();
    save_snapshot(
        state,
        Snapshot {
            measured_at: snapshot(state).map(|s| s.measured_at).unwrap_or(0),
            builder: Some(builder),
            builder_measured_at: Some(now),
            volumes: volumes.clone(),
            volumes_measured_at: Some(now),
            ..Default::default()
        },
    );
    Some(volumes)
}

fn builder_usage_of(df: &serde_json::Value) -> BuilderUsage {
    let mut u = BuilderUsage::default();
    for r in df
        .get("BuildCache")
        .and_then(|b| b.as_array())
        .into_iter()
        .flatten()
    {
        let size = r.get("Size").and_then(|s| s.as_i64()).unwrap_or(0).max(0) as u64;
        // Shared records are counted by each user in /system/df; BuildKit's own `du` counts
        // them once, as here: the record's size is its own bytes.
        u.size += size;
        u.records += 1;
        if r.get("Type").and_then(|t| t.as_str()) == Some("exec.cachemount") {
            u.cache_mounts += size;
        }
    }
    u
}

/// Prunes the builder's cache down to `keep` bytes with the engine's own keep-storage pruning
/// (what `docker builder prune --keep-storage` does): BuildKit chooses what goes, least recently
/// used first, and nothing else is touched. Returns the bytes it reports freed.
pub async fn prune_builder(engine: &Engine, keep: u64) -> Result<u64, EngineError> {
    let query = if engine.api_minor() >= 48 {
        format!("/build/prune?max-used-space={keep}&keep-storage={keep}")
    } else {
        format!("/build/prune?keep-storage={keep}")
    };
    let v = engine.post_json(&query).await?;
    Ok(v.get("SpaceReclaimed")
        .and_then(|s| s.as_i64())
        .unwrap_or(0)
        .max(0) as u64)
}

/// What `status` shows without asking the engine: the last measurement, written by whoever
/// measured last (the daemon after each build and hourly, `prune`, `doctor`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the projects' usage was last measured (seconds since the epoch).
    pub measured_at: u64,
    /// Per project.
    pub projects: BTreeMap<String, ProjectUsage>,
    /// The BuildKit cache, as last measured (None: never).
    #[serde(default)]
    pub builder: Option<BuilderUsage>,
    /// When `builder` was measured; the upkeep measures again once it is
    /// [`crate::cleanup::BUILDER_EVERY`] old.
    #[serde(default)]
    pub builder_measured_at: Option<u64>,
    /// Every volume's size (bytes), measured with the builder cache.
    #[serde(default)]
    pub volumes: BTreeMap<String, u64>,
    /// When `volumes` was measured (None: never), which `status` shows beside the sizes.
    #[serde(default)]
    pub volumes_measured_at: Option<u64>,
}

/// One project's line in the [`Snapshot`], as the last budget run left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProjectUsage {
    /// Unique bytes of the project's dockwarm images.
    pub used: u64,
    /// The budget that run enforced, in bytes.
    pub budget: u64,
    /// How many of the project's dockwarm images were left.
    pub images: usize,
}

/// The stored snapshot (`disk/usage.json` in the state directory); None before the first
/// measurement, or when it does not read.
pub fn snapshot(state: &State) -> Option<Snapshot> {
    state::read_json(&state.root().join("disk").join("usage.json"))
}

/// Merges `update` into the stored snapshot (projects measured now replace their old lines).
pub fn save_snapshot(state: &State, update: Snapshot) {
    let Ok(_guard) = state.lock("disk-usage") else {
        return;
    };
    let mut s = snapshot(state).unwrap_or_default();
    s.measured_at = update.measured_at;
    s.projects.extend(update.projects);
    if update.builder.is_some() {
        s.builder = update.builder;
        s.builder_measured_at = update.builder_measured_at;
    }
    if update.volumes_measured_at.is_some() {
        s.volumes = update.volumes;
        s.volumes_measured_at = update.volumes_measured_at;
    }
    if let Ok(dir) = state.dir("disk") {
        let _ = state::write_json_atomic(&dir.join("usage.json"), &s);
    }
}

/// What `status` shows about disk: the last measurement, never an engine call (so `status`
/// stays fast whatever the engine is doing).
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    /// The project of the checkout `status` ran in, if any.
    pub project: Option<String>,
    /// Unique bytes of that project's dockwarm images at the last measurement (None: not yet
    /// measured; the daemon measures after each build and hourly, `dockwarm prune` too).
    pub used: Option<u64>,
    /// Its budget as configured now.
    pub budget: Option<u64>,
    /// Where that budget comes from (dockwarm.toml, the user's config, or the default).
    pub budget_from: Option<String>,
    /// How many dockwarm images `used` counts.
    pub images: Option<usize>,
    /// When `used` was measured (seconds since the epoch).
    pub measured_at: Option<u64>,
    /// Every measured project.
    pub projects: BTreeMap<String, ProjectUsage>,
    /// The BuildKit cache (all of it, not only dockwarm's builds').
    pub builder: Option<BuilderUsage>,
    /// When `builder` was measured (seconds since the epoch).
    pub builder_measured_at: Option<u64>,
    /// Bytes of BuildKit cache kept when pruning it (None: never pruned).
    pub builder_budget: Option<u64>,
}

/// [`View`] for the checkout containing `here`, if any.
pub fn view(state: &State, here: Option<&std::path::Path>) -> View {
    let snap = snapshot(state).unwrap_or_default();
    let config = here.and_then(|h| crate::config::load(h, state.env()).ok());
    let mut v = View {
        projects: snap.projects.clone(),
        builder: snap.builder.clone(),
        builder_measured_at: snap.builder_measured_at,
        ..Default::default()
    };
    match config {
        Some(c) => {
            let p = c.project.value.clone();
            if let Some(u) = snap.projects.get(&p) {
                v.used = Some(u.used);
                v.images = Some(u.images);
                v.measured_at = Some(snap.measured_at);
            }
            v.budget = Some(c.prune_budget.value);
            v.budget_from = Some(c.prune_budget.from.to_string());
            v.builder_budget = c.builder_budget.value;
            v.project = Some(p);
        }
        None => {
            if let Ok(u) = crate::config::user_prune(state.env()) {
                v.budget = Some(u.budget.value);
                v.budget_from = Some(u.budget.from.to_string());
                v.builder_budget = u.builder_budget.value;
            }
            if !snap.projects.is_empty() {
                v.used = Some(snap.projects.values().map(|p| p.used).sum());
                v.images = Some(snap.projects.values().map(|p| p.images).sum());
                v.measured_at = Some(snap.measured_at);
            }
        }
    }
    v
}

impl View {
    /// One line for `status`.
    pub fn line(&self) -> String {
        let whose = self
            .project
            .as_deref()
            .map(|p| format!("{p}'s"))
            .unwrap_or_else(|| "all projects'".into());
        let mut out = match (self.used, self.budget) {
            (Some(u), Some(b)) => format!(
                "disk: {whose} dockwarm images use {} of the {} budget ({}{} image(s), measured {} ago)",
                human(u),
                human(b),
                if u > b { "OVER, all in use; " } else { "" },
                self.images.unwrap_or(0),
                crate::state::ago(self.measured_at.unwrap_or(0)),
            ),
            (None, Some(b)) => format!(
                "disk: {whose} dockwarm images not measured yet (budget {}); `dockwarm prune --budget --dry-run` measures now",
                human(b)
            ),
            _ => "disk: not measured yet".into(),
        };
        if let Some(b) = &self.builder {
            out.push_str(&format!(
                "\nbuild cache: {} ({} of it cache mounts), {}",
                human(b.size),
                human(b.cache_mounts),
                match self.builder_budget {
                    Some(k) => format!(
                        "pruned to {} by the engine ([prune] builder_budget)",
                        human(k)
                    ),
                    None =>
                        "never pruned by dockwarm (set [prune] builder_budget to opt in)".into(),
                }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_size("20GB").unwrap(), 20_000_000_000);
        assert_eq!(parse_size("20 gb").unwrap(), 20_000_000_000);
        assert_eq!(parse_size("1.5TB").unwrap(), 1_500_000_000_000);
        assert_eq!(parse_size("20GiB").unwrap(), 20 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("0").unwrap(), 0);
        for bad in ["20 gigs", "20", "GB", "-1GB", "1..5GB", "", "20 G B"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("20 gigs")
            .unwrap_err()
            .to_string()
            .contains("20GB"));
    }

    fn d(n: u8) -> String {
        format!("sha256:{n:064}")
    }

    #[test]
    fn history_entries_are_matched_to_layers() {
        // As BuildKit wrote it: a base, ENV (none), RUN true (empty layer), RUN (3 B), LABEL,
        // WORKDIR (empty layer), COPY (156 B), CMD.
        let history: Vec<(u64, String)> = [
            (1000, ""),
            (0, "ENV A=1"),
            (0, "RUN /bin/sh -c true # buildkit"),
            (3, "RUN /bin/sh -c echo hi > /x # buildkit"),
            (0, "LABEL x=y"),
            (0, "WORKDIR /newdir"),
            (156, "COPY Dockerfile /d # buildkit"),
            (0, "CMD [\"sh\"]"),
        ]
        .into_iter()
        .map(|(s, b)| (s, b.to_string()))
        .collect();
        let diffs: Vec<String> = (1..=5).map(d).collect();
        let l = match_layers("img", &diffs, &history, 1159);
        assert_eq!(l.keys, chain_ids(&diffs));
        assert_eq!(l.sizes, vec![1000, 0, 3, 0, 156]);
        // One layer too few for the history: the base is certain, the rest is the image's own.
        let l = match_layers("img", &diffs[..4], &history, 1159);
        assert_eq!(l.keys[0], chain_ids(&diffs)[0]);
        assert!(l.keys[1..].iter().all(|k| k.starts_with("img/")));
        assert_eq!(l.sizes.iter().sum::<u64>(), 1159);
    }

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let c = chain_ids(&[d(1), d(2)]);
        assert_eq!(c[0], d(1));
        let want = hex::encode(Sha256::digest(format!("{} {}", d(1), d(2)).as_bytes()));
        assert_eq!(c[1], format!("sha256:{want}"));
    }

    fn layers(keys: &[&str], sizes: &[u64]) -> Layers {
        Layers {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            sizes: sizes.to_vec(),
        }
    }

    #[test]
    fn shared_layers_count_once_and_foreign_ones_not_at_all() {
        let base = layers(&["b"], &[0]);
        let a = layers(&["b", "x", "y"], &[100, 10, 20]);
        let b = layers(&["b", "x", "z"], &[100, 10, 40]);
        assert_eq!(unique_bytes([&a, &b], []), 170);
        assert_eq!(unique_bytes([&a, &b], [&base]), 70);
    }

    fn item(id: &str, l: Layers, removable: bool, last_used: i64) -> Item {
        Item {
            id: id.into(),
            tags: vec![],
            removable,
            soft_keep: false,
            last_used,
            layers: l,
        }
    }

    #[test]
    fn the_budget_removes_the_least_recently_used_removable_images_until_under() {
        let items = vec![
            item("cur", layers(&["b", "c"], &[100, 50]), false, 1),
            item("old", layers(&["b", "o"], &[100, 50]), true, 2),
            item("mid", layers(&["b", "m"], &[100, 50]), true, 3),
            item("new", layers(&["b", "n"], &[100, 50]), true, 4),
        ];
        let base = layers(&["b"], &[]);
        // 200 B of our own layers; budget 120: old and mid go, new stays.
        let p = plan_budget(&items, &[&base], 120);
        assert_eq!(p.before, 200);
        assert_eq!(p.remove, vec!["old", "mid"]);
        assert_eq!(p.after, 100);
        // A budget below what must stay: everything removable goes, the current one stays.
        let p = plan_budget(&items, &[&base], 10);
        assert_eq!(p.remove, vec!["old", "mid", "new"]);
        assert_eq!(p.after, 50);
        // Under budget: nothing.
        assert!(plan_budget(&items, &[&base], 1000).remove.is_empty());
        // Soft keep goes last.
        let mut items = items;
        items[1].soft_keep = true;
        assert_eq!(
            plan_budget(&items, &[&base], 120).remove,
            vec!["mid", "new"]
        );
    }

    #[test]
    fn builder_usage_reads_df() {
        let df = serde_json::json!({"BuildCache": [
            {"Type": "regular", "Size": 100},
            {"Type": "exec.cachemount", "Size": 40},
            {"Type": "source.local", "Size": 1}
        ]});
        assert_eq!(
            builder_usage_of(&df),
            BuilderUsage {
                size: 141,
                cache_mounts: 40,
                records: 3
            }
        );
    }
}
