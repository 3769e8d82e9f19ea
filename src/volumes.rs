//! The shared cache volumes: one engine volume per `[volumes]` entry, named `<project>_<key>`,
//! shared by every workspace of the repository.
//!
//! The hand-made setup lost its sharing when compose started prefixing volume names with each
//! workspace's project; dockwarm names the volume itself and labels it, so `doctor` can tell a
//! shared volume from a per-workspace copy, and `rm` never touches a volume it did not create.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListContainersOptions, RemoveVolumeOptions};

use crate::config::{Config, VolumeSpec};
use crate::engine::{is_not_found, labels, Engine, EngineError};

/// Why a volume could not be created, listed or removed; a refusal names the volume and what
/// the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The engine could not be reached or refused the request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `volumes rm` was asked to remove a volume dockwarm did not create: it is never touched.
    #[error("volume {name} was not created by dockwarm (no {label} label); dockwarm leaves it alone — remove it with `docker volume rm {name}` if you mean to")]
    NotOurs {
        /// The volume's engine name.
        name: String,
        /// The label it lacks (`dev.dockwarm.managed`), named so the user can check.
        label: &'static str,
    },
    /// `volumes rm` was asked to remove a volume a container (running or stopped) still mounts.
    #[error("volume {name} is in use by container(s) {containers}; stop and remove them first")]
    InUse {
        /// The volume's engine name.
        name: String,
        /// The containers that mount it, comma-separated, for the user to stop and remove.
        containers: String,
    },
    /// `volumes rm` was given a name the engine has no volume for.
    #[error("no volume named {name}")]
    Missing {
        /// The name as given.
        name: String,
    },
}

impl From<bollard::errors::Error> for VolumeError {
    fn from(e: bollard::errors::Error) -> Self {
        VolumeError::Engine(e.into())
    }
}

/// What `ensure` found or did for one volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ensured {
    /// It did not exist; dockwarm created it with its labels.
    Created,
    /// It exists and dockwarm made it (earlier, or another process just now).
    Present,
    /// Exists, but without our label: the user made it; it is used as it is.
    PresentForeign,
}

/// The labels of a volume dockwarm creates: managed (so `volumes rm` may remove it) and the
/// project, so `volumes ls` finds it again.
pub fn labels_for(project: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::MANAGED.to_string(), "true".to_string()),
        (labels::PROJECT.to_string(), project.to_string()),
    ])
}

/// Creates the volume unless it exists. Safe to run from many processes at once: the engine's
/// volume create is idempotent per name, and the result is read back rather than assumed.
pub async fn ensure_one(
    engine: &Engine,
    project: &str,
    spec: &VolumeSpec,
) -> Result<Ensured, VolumeError> {
    if let Some(existing) = inspect(engine, &spec.name).await? {
        return Ok(if is_ours(&existing.labels) {
            Ensured::Present
        } else {
            Ensured::PresentForeign
        });
    }
    let request = VolumeCreateRequest {
        name: Some(spec.name.clone()),
        labels: Some(labels_for(project)),
        ..Default::default()
    };
    let created = engine.docker.create_volume(request).await?;
    // Another process may have won the race with its own create; both see the same volume.
    Ok(if is_ours(&created.labels) {
        Ensured::Created
    } else {
        Ensured::PresentForeign
    })
}

/// Creates every shared volume of `config` that is missing, so builds and `up` find it;
/// answers each volume's engine name with what was found or done.
pub async fn ensure(
    engine: &Engine,
    config: &Config,
) -> Result<Vec<(String, Ensured)>, VolumeError> {
    let mut out = Vec::new();
    for spec in &config.volumes {
        out.push((
            spec.name.clone(),
            ensure_one(engine, &config.project.value, spec).await?,
        ));
    }
    Ok(out)
}

async fn inspect(
    engine: &Engine,
    name: &str,
) -> Result<Option<bollard::models::Volume>, VolumeError> {
    match engine.docker.inspect_volume(name).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_ours(labels: &HashMap<String, String>) -> bool {
    labels.get(labels::MANAGED).map(String::as_str) == Some("true")
}

/// One row of `volumes ls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VolumeRow {
    /// The volume's engine name.
    pub name: String,
    /// Its `[volumes]` (or compose) key; `None` for a volume labelled for this project but no
    /// longer configured: left over, for `volumes rm` to remove.
    pub key: Option<String>,
    /// Where services mount it, when the config says.
    pub target: Option<String>,
    /// Whether the engine has it: a configured volume may not be created yet.
    pub exists: bool,
    /// Whether it carries dockwarm's label; `false` for one the user made under that name.
    pub managed: bool,
    /// Bytes, when the engine reports it.
    pub size: Option<u64>,
}

/// The configured volumes and any other volume labelled for this project, with their sizes
/// measured now (`/system/df`, which a busy engine can hold for long: see [`rows`]).
pub async fn list(engine: &Engine, config: &Config) -> Result<Vec<VolumeRow>, VolumeError> {
    let sizes = volume_sizes(engine).await.unwrap_or_default();
    rows(engine, config, &sizes).await
}

/// Like [`list`], with sizes given (a snapshot's): no `/system/df`.
pub async fn rows(
    engine: &Engine,
    config: &Config,
    sizes: &std::collections::BTreeMap<String, u64>,
) -> Result<Vec<VolumeRow>, VolumeError> {
    let project = &config.project.value;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={project}", labels::PROJECT)],
    )]);
    let listed = engine
        .docker
        .list_volumes(Some(bollard::query_parameters::ListVolumesOptions {
            filters: Some(filters),
        }))
        .await?
        .volumes
        .unwrap_or_default();
    let mut rows = Vec::new();
    for spec in &config.volumes {
        let found = inspect(engine, &spec.name).await?;
        rows.push(VolumeRow {
            name: spec.name.clone(),
            key: Some(spec.key.clone()),
            target: spec.target.clone(),
            exists: found.is_some(),
            managed: found.as_ref().is_some_and(|v| is_ours(&v.labels)),
            size: sizes.get(&spec.name).copied(),
        });
    }
    for v in listed {
        if rows.iter().any(|r| r.name == v.name) || !is_ours(&v.labels) {
            continue;
        }
        rows.push(VolumeRow {
            size: sizes.get(&v.name).copied(),
            name: v.name,
            key: None,
            target: None,
            exists: true,
            managed: true,
        });
    }
    Ok(rows)
}

/// Sizes of all volumes, from `/system/df`.
async fn volume_sizes(
    engine: &Engine,
) -> Result<std::collections::BTreeMap<String, u64>, EngineError> {
    let df = engine.get_json("/system/df").await?;
    Ok(crate::disk::volume_sizes_of(&df))
}

/// Removes volumes by name, refusing any without our label or in use by a container.
pub async fn remove(engine: &Engine, names: &[String]) -> Result<Vec<String>, VolumeError> {
    // Check everything first, so that a refusal leaves every volume in place.
    for name in names {
        let v = inspect(engine, name)
            .await?
            .ok_or_else(|| VolumeError::Missing { name: name.clone() })?;
        if !is_ours(&v.labels) {
            return Err(VolumeError::NotOurs {
                name: name.clone(),
                label: labels::MANAGED,
            });
        }
        let users = containers_using(engine, name).await?;
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.clone(),
                containers: users.join(", "),
            });
        }
    }
    for name in names {
        engine
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
            .await?;
    }
    Ok(names.to_vec())
}

async fn containers_using(engine: &Engine, volume: &str) -> Result<Vec<String>, VolumeError> {
    let filters = HashMap::from([("volume".to_string(), vec![volume.to_string()])]);
    let containers = engine
        .docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    Ok(containers
        .into_iter()
        .map(|c| {
            c.names
                .and_then(|n| n.first().cloned())
                .map(|n| n.trim_start_matches('/').to_string())
                .or(c.id)
                .unwrap_or_default()
        })
        .collect())
}

/// Human-readable bytes: 0 B, 1.5 KiB, 12.0 MiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
