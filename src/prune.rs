//! Removing dependency images that no workspace needs any more.
//!
//! Every lockfile change leaves the previous fingerprint's image behind; over weeks they fill the
//! disk. What may go is decided by [`choose`], a pure function, so its safety rules are tested
//! without an engine: only images with our label *and* a tag in our `dockwarm/<project>-<image>-deps`
//! repository are candidates; an image whose fingerprint a registered workspace uses now, or
//! that a container (running or not) was made from, stays; of the rest the `keep` newest per
//! image stay (the branch you switch back to tomorrow is warm), and `older_than` spares recent
//! ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, ListImagesOptions, RemoveImageOptions};

use crate::engine::{is_not_found, labels, Engine, EngineError};
use crate::fingerprint;

/// Why prune could not list or decide; a refused removal is reported per image instead.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The engine could not be reached, or refused a listing.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// An `--older-than` value that is not a number and a unit; the text as given.
    #[error("`{0}` is not an age; use a number and a unit: 90s, 30m, 12h, 7d, 2w")]
    BadAge(String),
}

impl From<bollard::errors::Error> for PruneError {
    fn from(e: bollard::errors::Error) -> Self {
        PruneError::Engine(e.into())
    }
}

/// One of dockwarm's dependency-stage images on the engine.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DepImage {
    /// The engine's image ID, matched against the images containers were made from.
    pub id: String,
    /// Its tags in our repository (only these are ever removed).
    pub tags: Vec<String>,
    /// The project label: prune keeps to this checkout's project unless `--all-projects`.
    pub project: String,
    /// The configured image it was built for; the `keep` newest are counted per image.
    pub image: String,
    /// The fingerprint label, checked against what registered workspaces use now.
    pub fingerprint: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// Its size as the engine reports it, shared layers counted in full; what prune sums as
    /// "in image sizes".
    pub size: u64,
}

/// Why an image stays.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Kept {
    /// A registered workspace's current (or last built) fingerprint.
    InUse,
    /// A container was made from it.
    Container(String),
    /// Among the `keep` newest unused images of its image.
    Newest,
    /// Younger than `--older-than`.
    TooRecent,
}

/// What [`choose`] decided: every candidate lands in exactly one list, so the command can say
/// why each one stayed.
#[derive(Debug, Default, serde::Serialize)]
pub struct Choice {
    /// The images to remove (by their tags in our repository).
    pub remove: Vec<DepImage>,
    /// The images that stay, each with the first rule that kept it.
    pub keep: Vec<(DepImage, Kept)>,
}

/// Decides what goes. `containers`: image ID → a container made from it.
pub fn choose(
    images: Vec<DepImage>,
    used: &BTreeSet<String>,
    containers: &HashMap<String, String>,
    keep: usize,
    older_than: Option<Duration>,
    now: i64,
) -> Choice {
    let mut by_image: BTreeMap<(String, String), Vec<DepImage>> = BTreeMap::new();
    for i in images {
        by_image
            .entry((i.project.clone(), i.image.clone()))
            .or_default()
            .push(i);
    }
    let mut choice = Choice::default();
    for (_, mut group) in by_image {
        group.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        let mut unused_kept = 0;
        for image in group {
            if used.contains(&image.fingerprint) {
                choice.keep.push((image, Kept::InUse));
            } else if let Some(c) = containers.get(&image.id) {
                let c = c.clone();
                choice.keep.push((image, Kept::Container(c)));
            } else if unused_kept < keep {
                unused_kept += 1;
                choice.keep.push((image, Kept::Newest));
            } else if older_than.is_some_and(|age| now - image.created < age.as_secs() as i64) {
                choice.keep.push((image, Kept::TooRecent));
            } else {
                choice.remove.push(image);
            }
        }
    }
    choice
}

/// dockwarm's dependency images, of `projects` (all projects when None).
pub async fn list(
    engine: &Engine,
    projects: Option<&BTreeSet<String>>,
) -> Result<Vec<DepImage>, PruneError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}=true", labels::MANAGED)],
    )]);
    let summaries = engine
        .docker
        .list_images(Some(ListImagesOptions {
            all: false,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut out = Vec::new();
    for s in summaries {
        let label = |k: &str| s.labels.get(k).cloned();
        // Belt and braces: the engine filtered on the label, but nothing without it is ever ours.
        if label(labels::MANAGED).as_deref() != Some("true") || label(labels::WORKSPACE).is_some() {
            continue;
        }
        let (Some(project), Some(image), Some(fp)) = (
            label(labels::PROJECT),
            label(labels::IMAGE),
            label(labels::FINGERPRINT),
        ) else {
            continue;
        };
        if projects.is_some_and(|p| !p.contains(&project)) {
            continue;
        }
        let repo = format!("{}:", fingerprint::repository(&project, &image));
        let tags: Vec<String> = s
            .repo_tags
            .iter()
            .filter(|t| t.starts_with(&repo))
            .cloned()
            .collect();
        if tags.is_empty() {
            continue;
        }
        out.push(DepImage {
            id: s.id.clone(),
            tags,
            project,
            image,
            fingerprint: fp,
            created: s.created,
            size: s.size.max(0) as u64,
        });
    }
    Ok(out)
}

/// Image ID → the name of a container made from it, for every container, stopped ones too
/// (removing their image would break `docker start`).
pub async fn container_images(engine: &Engine) -> Result<HashMap<String, String>, PruneError> {
    let containers = engine
        .docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    let mut out = HashMap::new();
    for c in containers {
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first().cloned())
            .map(|n| n.trim_start_matches('/').to_string())
            .or(c.id.clone())
            .unwrap_or_default();
        if let Some(id) = c.image_id {
            out.insert(id, name);
        }
    }
    Ok(out)
}

/// Removes our tags of each image (never `force`: the engine itself refuses an image a
/// container uses, should one have started since [`choose`]). Returns, per image, why it
/// could not go, if it could not.
pub async fn remove(engine: &Engine, images: &[DepImage]) -> Vec<(DepImage, Option<String>)> {
    let mut out = Vec::new();
    for image in images {
        let mut error = None;
        for tag in &image.tags {
            let options = RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            match engine.docker.remove_image(tag, Some(options), None).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    error = Some(e.to_string().lines().next().unwrap_or_default().to_string());
                }
            }
        }
        out.push((image.clone(), error));
    }
    out
}

/// The bytes of image layers on the engine, from `/system/df`: measured before and after, the
/// difference is what a prune really freed (layers shared with other images stay).
pub async fn layers_size(engine: &Engine) -> Option<u64> {
    let df = engine.get_json("/system/df").await.ok()?;
    df.get("LayersSize")
        .and_then(|v| v.as_i64())
        .or_else(|| df.pointer("/ImageUsage/TotalSize").and_then(|v| v.as_i64()))
        .map(|v| v.max(0) as u64)
}

/// The fingerprints registered workspaces need: each one's current fingerprint (computed now,
/// base image IDs included) and the last one it built (its workspace image is made on it).
pub async fn used_fingerprints(
    engine: &Engine,
    state: &crate::state::State,
    workspaces: &[crate::registry::Workspace],
    projects: Option<&BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for ws in workspaces {
        if projects.is_some_and(|p| !p.contains(&ws.project)) {
            continue;
        }
        used.extend(ws.images.values().filter_map(|s| s.fingerprint.clone()));
        let Ok(plan) = crate::workspace::Workspace::discover(&ws.path)
            .map_err(crate::config::ConfigError::from)
            .and_then(|w| crate::plan::WorkspacePlan::load(state, &w, engine.ignore_dialect()))
        else {
            continue;
        };
        for image in &plan.images {
            if let Ok(fp) = crate::prebuild::fingerprint_image(engine, image).await {
                used.insert(fp.hex);
            }
        }
    }
    used
}

/// `90s`, `30m`, `12h`, `7d`, `2w`.
pub fn parse_age(text: &str) -> Result<Duration, PruneError> {
    let t = text.trim();
    let bad = || PruneError::BadAge(text.to_string());
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.checked_mul(secs).ok_or_else(bad)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, fp: &str, created: i64) -> DepImage {
        DepImage {
            id: id.into(),
            tags: vec![format!("dockwarm/p-app-deps:{fp}")],
            project: "p".into(),
            image: "app".into(),
            fingerprint: fp.into(),
            created,
            size: 10,
        }
    }

    fn removed(c: &Choice) -> Vec<&str> {
        c.remove.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn keeps_the_used_the_containers_and_the_newest_unused() {
        let images = (1..=6)
            .map(|i| img(&format!("i{i}"), &format!("f{i}"), i * 100))
            .collect::<Vec<_>>();
        let used = BTreeSet::from(["f1".to_string()]);
        let containers = HashMap::from([("i2".to_string(), "web".to_string())]);
        let c = choose(images.clone(), &used, &containers, 2, None, 1000);
        // Unused, newest first: i6, i5 kept; i4, i3 go; i2 has a container; i1 is used.
        assert_eq!(removed(&c), vec!["i4", "i3"]);
        let c = choose(images.clone(), &used, &containers, 0, None, 1000);
        assert_eq!(removed(&c), vec!["i6", "i5", "i4", "i3"]);
        // Only older than 450 s: i6 (created 600, age 400) is spared; i5, i4, i3 are old enough.
        let c = choose(
            images,
            &used,
            &containers,
            0,
            Some(Duration::from_secs(450)),
            1000,
        );
        assert_eq!(removed(&c), vec!["i5", "i4", "i3"]);
    }

    #[test]
    fn keep_counts_per_image() {
        let mut images = vec![img("a1", "f1", 1), img("a2", "f2", 2)];
        let mut other = img("b1", "g1", 1);
        other.image = "worker".into();
        images.push(other);
        let c = choose(images, &BTreeSet::new(), &HashMap::new(), 1, None, 10);
        assert_eq!(removed(&c), vec!["a1"]);
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_age("2w").unwrap(), Duration::from_secs(1_209_600));
        assert!(parse_age("7").is_err());
        assert!(parse_age("d").is_err());
        assert!(parse_age("5y").is_err());
    }
}
