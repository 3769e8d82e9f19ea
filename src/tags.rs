//! Who holds a compose name (`<compose project>-<service>`, a service's `image:`): dockwarm's
//! build, compose's own build for that very project and service, or someone else's image.
//!
//! A full prebuild replaces dockwarm's and compose's (`docker compose build` would replace
//! them too: compose's name for a service's image is the service's current image, and the old
//! image stays, untagged) and leaves anyone else's alone; `status` reads the same answer to
//! tell warm from stale.

use crate::engine::{is_not_found, labels, Engine, EngineError};

/// The label compose v2 puts on the images it builds, naming their compose project: an image
/// of this workspace's project is compose's own build, which a full prebuild may replace.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
/// The label compose v2 puts on the images it builds, naming the service they were built for.
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

/// What a compose name points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// No image has this name.
    Missing,
    /// An image dockwarm built, of this dependency fingerprint (None: label missing).
    Ours {
        /// Its `dev.dockwarm.fingerprint` label: `status` compares it with the current one.
        fingerprint: Option<String>,
    },
    /// An image `docker compose build` made for this compose project and one of the image's
    /// services: when (seconds since the epoch, as the image says: BuildKit keeps a cached
    /// layer's time) and its layers (diff IDs).
    Compose {
        /// When it was made, to tell whether it came after the dependency inputs last changed.
        created: Option<i64>,
        /// Its diff IDs: built on the current dependency image, they start with that image's.
        layers: Vec<String>,
    },
    /// Anything else: the user's, pulled, or another project's. Never touched.
    Other,
}

impl Holder {
    /// Whether a full prebuild may point the name at its build.
    pub fn replaceable(&self) -> bool {
        !matches!(self, Holder::Other)
    }
}

/// Who holds `tag`, for a workspace whose compose project is `compose_project` and an image
/// that serves `services`.
pub async fn holder(
    engine: &Engine,
    tag: &str,
    compose_project: &str,
    services: &[String],
) -> Result<Holder, EngineError> {
    let image = match engine.docker.inspect_image(tag).await {
        Ok(image) => image,
        Err(e) if is_not_found(&e) => return Ok(Holder::Missing),
        Err(e) => return Err(e.into()),
    };
    let created = image.created.map(|c| c.unix_timestamp());
    let layers = image.root_fs.and_then(|r| r.layers).unwrap_or_default();
    let l = image.config.and_then(|c| c.labels).unwrap_or_default();
    if l.get(labels::MANAGED).map(String::as_str) == Some("true") {
        return Ok(Holder::Ours {
            fingerprint: l.get(labels::FINGERPRINT).cloned(),
        });
    }
    let composes = l.get(COMPOSE_PROJECT).map(String::as_str) == Some(compose_project)
        && l.get(COMPOSE_SERVICE)
            .is_some_and(|s| services.iter().any(|x| x == s));
    Ok(if composes {
        Holder::Compose { created, layers }
    } else {
        Holder::Other
    })
}
