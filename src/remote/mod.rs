//! The team registry (`[registry]`): dependency images shared past one machine through any
//! OCI registry. Not to be confused with [`crate::registry`], the workspaces registered here.
//!
//! - [`reference`](mod@reference): `[registry] url` parsed (host, path, whether plain HTTP is allowed);
//! - [`credentials`]: docker's own credentials for the host (config.json, helpers);
//! - [`client`]: the registry's HTTP API, for checks with short deadlines;
//! - [`status`]: what `dockwarm registry status` reports;
//! - this module: [`Team`], which checks, pulls and pushes a fingerprint's image through the
//!   engine (so the engine's own registry rules and layer store are used), and the last thing
//!   that happened with the registry ([`last_event`]), which `status` shows.
//!
//! A registry that is down or refuses never fails a build: callers turn a [`RemoteError`] into
//! one line (log and status) and build locally.

pub mod client;
pub mod credentials;
pub mod reference;
pub mod status;

use futures_util::StreamExt;

use crate::engine::{labels, Engine};
use crate::env::Env;
use crate::state::State;
pub use client::Access;
pub use credentials::Credentials;
pub use reference::TeamRegistry;

/// What went wrong with the team registry; each says which registry and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No answer from the registry (down, wrong host or port, no TLS roots): the build goes
    /// on locally.
    #[error("team registry {registry} is unreachable ({reason}); start it or fix [registry] url")]
    Unreachable {
        /// The registry as configured (`HOST/PATH`).
        registry: String,
        /// What the connection attempt ran into.
        reason: String,
    },
    /// The registry wants credentials docker does not have, or refused the ones it has.
    #[error("team registry {registry}: {reason}; run `docker login {host}`")]
    Unauthorized {
        /// The registry as configured (`HOST/PATH`).
        registry: String,
        /// The host to `docker login` to, which the message tells the user to do.
        host: String,
        /// Whose credentials were refused, or that there were none.
        reason: String,
    },
    /// The registry (or its token service) answered something the registry API does not
    /// allow: a status, a body or a challenge dockwarm cannot use.
    #[error("team registry {registry}: {reason}")]
    Protocol {
        /// The registry as configured (`HOST/PATH`).
        registry: String,
        /// Which request, and what came back.
        reason: String,
    },
    /// docker's own credentials for the host could not be read (config.json, a helper).
    #[error("team registry: {0}")]
    Credentials(#[from] credentials::CredentialError),
    /// The engine failed to pull, tag or push the image (it talks to the registry itself).
    #[error("team registry {registry}: the engine's {action} of {reference} failed: {reason}")]
    Engine {
        /// The registry as configured (`HOST/PATH`).
        registry: String,
        /// What the engine was asked to do: `pull`, `tag` or `push`.
        action: &'static str,
        /// The image reference it was asked to act on.
        reference: String,
        /// The engine's own message.
        reason: String,
    },
    /// A pulled image lacks dockwarm's labels for that fingerprint: someone else's image under
    /// our tag, which is never used as a warm dependency stage.
    #[error("team registry {registry}: {reference} is not dockwarm's image of fingerprint {fingerprint}; left unused")]
    NotOurs {
        /// The registry as configured (`HOST/PATH`).
        registry: String,
        /// The registry reference that was pulled (and untagged again).
        reference: String,
        /// The fingerprint its tag claimed.
        fingerprint: String,
    },
}

/// The team registry with docker's credentials for it.
pub struct Team {
    /// The registry's host, path and whether plain HTTP is allowed.
    pub registry: TeamRegistry,
    credentials: Option<Credentials>,
    client: client::Client,
}

impl Team {
    /// Reads docker's credentials for the registry's host (no network yet), from docker's
    /// configuration where `env` puts it.
    pub fn new(registry: &TeamRegistry, env: &Env) -> Result<Team, RemoteError> {
        let credentials = credentials::lookup(env, &registry.host)?;
        let client = client::Client::new(registry, credentials.clone())?;
        Ok(Team {
            registry: registry.clone(),
            credentials,
            client,
        })
    }

    /// Who we are to the registry ("user (from auths)"), without the secret.
    pub fn identity(&self) -> Option<String> {
        self.credentials
            .as_ref()
            .map(|c| format!("{} (from {})", c.username, c.source))
    }

    /// Whether it answers and lets us in.
    pub async fn check(&self) -> Result<Access, RemoteError> {
        self.client.check().await
    }

    /// Whether it holds this fingerprint's dependency image.
    pub async fn has(&self, project: &str, image: &str, fp: &str) -> Result<bool, RemoteError> {
        self.client
            .has_tag(&self.registry.repository(project, image), fp)
            .await
    }

    /// The fingerprints of one image it holds.
    pub async fn fingerprints(
        &self,
        project: &str,
        image: &str,
    ) -> Result<Vec<String>, RemoteError> {
        let tags = self
            .client
            .tags(&self.registry.repository(project, image))
            .await?;
        Ok(tags
            .into_iter()
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect())
    }

    /// docker's credentials for the registry, as the engine takes them with a pull or push.
    fn engine_auth(&self) -> Option<bollard::auth::DockerCredentials> {
        self.credentials
            .as_ref()
            .map(|c| c.for_engine(&self.registry.host))
    }

    fn engine_error(
        &self,
        action: &'static str,
        reference: &str,
        reason: impl std::fmt::Display,
    ) -> RemoteError {
        RemoteError::Engine {
            registry: self.registry.to_string(),
            action,
            reference: reference.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Pulls the fingerprint's image into the engine and tags it `local_tag`, after checking
    /// that it is dockwarm's image of that fingerprint; the registry's name is dropped again
    /// (the image keeps one name, the local one).
    pub async fn pull(
        &self,
        engine: &Engine,
        project: &str,
        image: &str,
        fp: &str,
        local_tag: &str,
    ) -> Result<(), RemoteError> {
        let reference = self.registry.image_ref(project, image, fp);
        let repository = self.registry.engine_repository(project, image);
        let options = bollard::query_parameters::CreateImageOptions {
            from_image: Some(repository.clone()),
            tag: Some(fp.to_string()),
            ..Default::default()
        };
        let auth = self.engine_auth();
        let mut stream = engine.docker.create_image(Some(options), None, auth);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| self.engine_error("pull", &reference, e))?;
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_else(|| "pull failed".into());
                return Err(self.engine_error("pull", &reference, message));
            }
        }
        let inspected = engine
            .docker
            .inspect_image(&reference)
            .await
            .map_err(|e| self.engine_error("pull", &reference, e))?;
        let image_labels = inspected.config.and_then(|c| c.labels).unwrap_or_default();
        let ours = image_labels.get(labels::MANAGED).map(String::as_str) == Some("true")
            && image_labels.get(labels::FINGERPRINT).map(String::as_str) == Some(fp);
        if !ours {
            untag(engine, &reference).await;
            return Err(RemoteError::NotOurs {
                registry: self.registry.to_string(),
                reference,
                fingerprint: fp.to_string(),
            });
        }
        let (repo, tag) = local_tag.rsplit_once(':').unwrap_or((local_tag, "latest"));
        engine
            .docker
            .tag_image(
                &reference,
                Some(bollard::query_parameters::TagImageOptions {
                    repo: Some(repo.to_string()),
                    tag: Some(tag.to_string()),
                }),
            )
            .await
            .map_err(|e| self.engine_error("tag", &reference, e))?;
        untag(engine, &reference).await;
        Ok(())
    }

    /// Pushes `local_tag` (dockwarm's image of `fp`, with its inline cache metadata) as the
    /// fingerprint's tag in the registry.
    pub async fn push(
        &self,
        engine: &Engine,
        project: &str,
        image: &str,
        fp: &str,
        local_tag: &str,
    ) -> Result<(), RemoteError> {
        let reference = self.registry.image_ref(project, image, fp);
        let repository = self.registry.engine_repository(project, image);
        engine
            .docker
            .tag_image(
                local_tag,
                Some(bollard::query_parameters::TagImageOptions {
                    repo: Some(repository.clone()),
                    tag: Some(fp.to_string()),
                }),
            )
            .await
            .map_err(|e| self.engine_error("tag", local_tag, e))?;
        let auth = self.engine_auth();
        let options = bollard::query_parameters::PushImageOptions {
            tag: Some(fp.to_string()),
            ..Default::default()
        };
        let mut stream = engine.docker.push_image(&repository, Some(options), auth);
        let mut failure = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        failure = Some(detail.message.unwrap_or_else(|| "push failed".into()));
                    }
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        untag(engine, &reference).await;
        match failure {
            Some(reason) => Err(self.engine_error("push", &reference, reason)),
            None => Ok(()),
        }
    }
}

/// Pushes a fingerprint's image unless the registry holds it already; what happened, in one
/// line.
pub async fn push_missing(
    engine: &Engine,
    env: &Env,
    registry: &TeamRegistry,
    project: &str,
    image: &str,
    fp: &str,
    local_tag: &str,
) -> Result<String, RemoteError> {
    let team = Team::new(registry, env)?;
    let short = &fp[..12.min(fp.len())];
    if team.has(project, image, fp).await? {
        return Ok(format!(
            "team registry {registry} already holds fingerprint {short}"
        ));
    }
    team.push(engine, project, image, fp, local_tag).await?;
    Ok(format!(
        "pushed fingerprint {short} to team registry {registry}"
    ))
}

/// The background push (`dockwarm registry push-image`): one push per fingerprint at a time
/// (another one running: nothing to do), its outcome recorded for `status`. Returns the line
/// to print, or None when another process is pushing it.
pub async fn push_recorded(
    state: &State,
    engine: &Engine,
    registry: &TeamRegistry,
    project: &str,
    image: &str,
    fp: &str,
) -> Result<Option<String>, RemoteError> {
    let Ok(Some(_guard)) = state.try_lock(&format!("push-{fp}")) else {
        return Ok(None);
    };
    let local_tag = format!(
        "{}:{}",
        crate::fingerprint::repository(project, image),
        &fp[..12.min(fp.len())]
    );
    match push_missing(
        engine,
        state.env(),
        registry,
        project,
        image,
        fp,
        &local_tag,
    )
    .await
    {
        Ok(line) => {
            record_event(state, project, true, &line);
            Ok(Some(line))
        }
        Err(e) => {
            record_event(state, project, false, &e.to_string());
            Err(e)
        }
    }
}

/// Drops one name of an image (never the image: it keeps its other names).
async fn untag(engine: &Engine, reference: &str) {
    let _ = engine
        .docker
        .remove_image(
            reference,
            Some(bollard::query_parameters::RemoveImageOptions {
                noprune: true,
                ..Default::default()
            }),
            None,
        )
        .await;
}

/// The last thing that happened between this machine and the team registry, per project:
/// what `status` shows in one line.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// When it happened (seconds since the epoch), shown as "… ago".
    pub at: u64,
    /// False when the registry was down, refused, or lacked what was asked.
    pub ok: bool,
    /// What happened, in the one line the pull, push or check reported.
    pub line: String,
}

fn event_path(state: &State, project: &str) -> Option<std::path::PathBuf> {
    state
        .dir("team-registry")
        .ok()
        .map(|d| d.join(format!("{project}.json")))
}

/// Records what happened (best effort: the state dir failing must not fail a build).
pub fn record_event(state: &State, project: &str, ok: bool, line: &str) {
    if let Some(path) = event_path(state, project) {
        let _ = crate::state::write_json_atomic(
            &path,
            &Event {
                at: crate::state::now_secs(),
                ok,
                line: line.to_string(),
            },
        );
    }
}

/// The last recorded event of a project, if any.
pub fn last_event(state: &State, project: &str) -> Option<Event> {
    crate::state::read_json(&event_path(state, project)?)
}
