//! The connection to the Docker engine.
//!
//! dockwarm finds the engine the way the docker CLI does, so that it builds on the same engine
//! the user's own `docker compose build` talks to: `DOCKER_HOST`, else the current docker context
//! (`DOCKER_CONTEXT`, else `currentContext` in `~/.docker/config.json`), else the default socket
//! paths of Linux, Docker Desktop, Colima and OrbStack.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use sha2::{Digest, Sha256};

use crate::env::Env;

/// Labels that mark what dockwarm created; nothing without `MANAGED` is ever removed.
pub mod labels {
    /// "true" on everything dockwarm created; prune, cleanup and `volumes rm` touch nothing
    /// without it.
    pub const MANAGED: &str = "dev.dockwarm.managed";
    /// The dockwarm project a dependency image belongs to, so prune and the disk budget can keep
    /// to one project's images.
    pub const PROJECT: &str = "dev.dockwarm.project";
    /// The dependency fingerprint an image was built from, so a prebuild can tell a tag is
    /// already current without rebuilding.
    pub const FINGERPRINT: &str = "dev.dockwarm.fingerprint";
    /// The configured image (compose service) a dependency image was built for, so prune keeps
    /// its newest few per image.
    pub const IMAGE: &str = "dev.dockwarm.image";
    /// On workspace images: the path of the workspace they were built for.
    pub const WORKSPACE: &str = "dev.dockwarm.workspace";
    /// On workspace images: the digest of everything they were built from.
    pub const SOURCE: &str = "dev.dockwarm.source";
}

/// How long a request may take before we call the engine unreachable. Generous enough for a
/// loaded laptop, short enough that a stopped Docker Desktop is reported instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the engine could not be found or asked; each message names where dockwarm looked and
/// what to change.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Nothing answered at the resolved endpoint (or not in time); the hint says how to start the
    /// engine that endpoint belongs to.
    #[error("cannot reach the Docker engine at {endpoint} ({source_desc}): {reason}; {hint}")]
    Unreachable {
        /// The address that was tried, e.g. `unix:///var/run/docker.sock`.
        endpoint: String,
        /// Where that address came from ([`Endpoint::origin`]), so a wrong `DOCKER_HOST` or
        /// context shows.
        source_desc: String,
        /// What failed: the connection error, or the timeout.
        reason: String,
        /// What to do for this kind of engine: start Docker Desktop, `colima start`, systemctl, ...
        hint: String,
    },
    /// `DOCKER_HOST` names a transport dockwarm cannot speak (ssh://, npipe://); the value as
    /// given.
    #[error(
        "DOCKER_HOST={0} uses a scheme dockwarm does not support (use unix://, tcp:// or http://)"
    )]
    UnsupportedScheme(String),
    /// The docker context chosen has no `meta.json`: a typo in `DOCKER_CONTEXT` or a context that
    /// was removed.
    #[error("docker context `{name}` named by {origin} has no metadata in {dir}; run `docker context ls` to check it")]
    UnknownContext {
        /// The context's name.
        name: String,
        /// What chose it: `DOCKER_CONTEXT` or the `config.json` whose `currentContext` names it.
        origin: String,
        /// The metadata directory that was looked for, as the CLI would store it.
        dir: String,
    },
    /// docker's own configuration (`config.json`, a context's `meta.json`) could not be read.
    #[error("cannot read {}: {source}", path.display())]
    DockerConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// docker's own configuration is not JSON.
    #[error("{}:{}:{}: not valid JSON; fix it (the docker CLI reads the same file)", path.display(), source.line(), source.column())]
    DockerConfigJson {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        #[source]
        source: serde_json::Error,
    },
    /// docker's own configuration is not what the docker CLI writes.
    #[error("{}: {what}; fix or remove it (the docker CLI reads the same file)", path.display())]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// An engine variable holds bytes that are not UTF-8; refused rather than taken as unset, which
    /// would quietly pick another engine.
    #[error("{name}={value} is not valid UTF-8; set it to the engine's address (or unset it)")]
    NotUtf8 {
        /// The variable, e.g. `DOCKER_HOST`.
        name: String,
        /// Its value, escaped for printing.
        value: String,
    },
    /// The engine answered a request with an error, or the connection broke mid-request.
    #[error("Docker engine request failed: {0}")]
    Api(#[from] bollard::errors::Error),
}

/// Where the engine endpoint came from, for `doctor` and for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///var/run/docker.sock` or `tcp://host:port`.
    pub host: String,
    /// "DOCKER_HOST", "docker context `colima`", "default socket (Docker Desktop)", ...
    pub origin: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {})", self.host, self.origin)
    }
}

/// The variables that choose the engine, as one user's shell had them. The daemon outlives
/// the shell that started it (often a hook's, under whatever `DOCKER_HOST` that shell had), so
/// `init` and the hooks record the workspace user's own in the registry and each build the
/// daemon runs for that workspace uses them, not the daemon's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineEnv {
    /// `DOCKER_HOST`; None when unset (or empty).
    #[serde(default)]
    pub docker_host: Option<String>,
    /// `DOCKER_CONTEXT`; None when unset (or empty), and then `currentContext` decides.
    #[serde(default)]
    pub docker_context: Option<String>,
    /// `DOCKER_CONFIG`, where `config.json` and the contexts live; None: `~/.docker`.
    #[serde(default)]
    pub docker_config: Option<PathBuf>,
}

impl EngineEnv {
    /// The ones in `env`. A value that is not UTF-8 counts as unset here; resolving the
    /// endpoint from `env` itself ([`resolve_endpoint`]) reports it.
    pub fn from_env(env: &Env) -> EngineEnv {
        let text = |name: &str| {
            env.non_empty(name)
                .and_then(OsStr::to_str)
                .map(String::from)
        };
        EngineEnv {
            docker_host: text("DOCKER_HOST"),
            docker_context: text("DOCKER_CONTEXT"),
            docker_config: env.docker_config(),
        }
    }

    /// `(name, value)` for each variable, None to remove it: what a child process gets so that
    /// its docker CLI and its own resolution agree with [`resolve_endpoint_in`].
    pub fn vars(&self) -> [(&'static str, Option<std::ffi::OsString>); 3] {
        [
            ("DOCKER_HOST", self.docker_host.clone().map(Into::into)),
            (
                "DOCKER_CONTEXT",
                self.docker_context.clone().map(Into::into),
            ),
            ("DOCKER_CONFIG", self.docker_config.clone().map(Into::into)),
        ]
    }
}

/// Resolves the endpoint `env` names, without touching the network.
pub fn resolve_endpoint(env: &Env) -> Result<Endpoint, EngineError> {
    resolve(
        non_empty_env(env, "DOCKER_HOST")?,
        non_empty_env(env, "DOCKER_CONTEXT")?,
        env.docker_config()
            .unwrap_or_else(|| home(env).join(".docker")),
        env,
    )
}

/// Resolves the endpoint another process's variables name (see [`EngineEnv`]); `HOME` is
/// this one's (`env`), for the default `~/.docker`.
pub fn resolve_endpoint_in(engine: &EngineEnv, env: &Env) -> Result<Endpoint, EngineError> {
    resolve(
        engine.docker_host.clone().filter(|h| !h.is_empty()),
        engine.docker_context.clone().filter(|c| !c.is_empty()),
        engine
            .docker_config
            .clone()
            .unwrap_or_else(|| home(env).join(".docker")),
        env,
    )
}

fn resolve(
    host: Option<String>,
    context: Option<String>,
    config_dir: PathBuf,
    env: &Env,
) -> Result<Endpoint, EngineError> {
    if let Some(host) = host {
        return Ok(Endpoint {
            host,
            origin: "DOCKER_HOST".into(),
        });
    }
    let (context, origin) = match context {
        Some(name) => (Some(name), "DOCKER_CONTEXT".to_string()),
        None => (
            current_context(&config_dir.join("config.json"))?,
            format!("{}", config_dir.join("config.json").display()),
        ),
    };
    if let Some(name) = context.filter(|n| n != "default") {
        return context_endpoint(&config_dir, &name, &origin);
    }
    Ok(default_socket(env))
}

/// A variable that must be text (an address, a context name): one that is not is an error
/// naming it, never silently another engine.
fn non_empty_env(env: &Env, name: &str) -> Result<Option<String>, EngineError> {
    match env.non_empty(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|v| Some(v.to_string()))
            .ok_or_else(|| EngineError::NotUtf8 {
                name: name.into(),
                value: crate::workspace::escaped(v),
            }),
    }
}

fn home(env: &Env) -> PathBuf {
    env.home()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn current_context(config_json: &Path) -> Result<Option<String>, EngineError> {
    let text = match std::fs::read_to_string(config_json) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(EngineError::DockerConfigRead {
                path: config_json.to_path_buf(),
                source,
            })
        }
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| EngineError::DockerConfigJson {
            path: config_json.to_path_buf(),
            source,
        })?;
    Ok(value
        .get("currentContext")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

/// Context metadata lives in `contexts/meta/<sha256 of the name>/meta.json`, as the CLI stores it.
fn context_endpoint(config_dir: &Path, name: &str, origin: &str) -> Result<Endpoint, EngineError> {
    let dir = config_dir
        .join("contexts/meta")
        .join(hex::encode(Sha256::digest(name.as_bytes())));
    let meta = dir.join("meta.json");
    let text = std::fs::read_to_string(&meta).map_err(|_| EngineError::UnknownContext {
        name: name.into(),
        origin: origin.into(),
        dir: dir.display().to_string(),
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| EngineError::DockerConfigJson {
            path: meta.clone(),
            source,
        })?;
    let host = value
        .pointer("/Endpoints/docker/Host")
        .and_then(|v| v.as_str())
        .ok_or_else(|| EngineError::DockerConfig {
            path: meta.clone(),
            what: "no Endpoints.docker.Host".into(),
        })?;
    Ok(Endpoint {
        host: host.to_string(),
        origin: format!("docker context `{name}`"),
    })
}

/// The first default socket that exists; Linux's path when none does, so the error names it.
fn default_socket(env: &Env) -> Endpoint {
    let home = home(env);
    let candidates = [
        (PathBuf::from("/var/run/docker.sock"), "default socket"),
        (
            home.join(".docker/run/docker.sock"),
            "Docker Desktop socket",
        ),
        (home.join(".colima/default/docker.sock"), "Colima socket"),
        (home.join(".colima/docker.sock"), "Colima socket"),
        (home.join(".orbstack/run/docker.sock"), "OrbStack socket"),
    ];
    let (path, origin) = candidates
        .iter()
        .find(|(p, _)| p.exists())
        .unwrap_or(&candidates[0]);
    Endpoint {
        host: format!("unix://{}", path.display()),
        origin: origin.to_string(),
    }
}

fn start_hint(endpoint: &Endpoint) -> String {
    if endpoint.origin.contains("Desktop") {
        "start Docker Desktop".into()
    } else if endpoint.origin.contains("Colima") {
        "run `colima start`".into()
    } else if endpoint.origin.contains("OrbStack") {
        "start OrbStack".into()
    } else if cfg!(target_os = "macos") {
        "start Docker Desktop, Colima or OrbStack, or set DOCKER_HOST".into()
    } else {
        "start it with `sudo systemctl start docker` (or `sudo dockerd &`), or set DOCKER_HOST"
            .into()
    }
}

/// A connected engine: the client, where it points, and the API version both sides speak.
#[derive(Clone)]
pub struct Engine {
    /// The bollard client, set to the negotiated API version; what every engine call goes through.
    pub docker: Docker,
    /// Where it points and why, for messages and `doctor`.
    pub endpoint: Endpoint,
    /// The engine's version from its `Server:` header, e.g. "20.10.24+dfsg1".
    pub engine_version: String,
}

impl Engine {
    /// Connects and negotiates the API version; fails fast with a one-line hint when the engine
    /// does not answer.
    pub async fn connect(env: &Env) -> Result<Engine, EngineError> {
        let endpoint = resolve_endpoint(env)?;
        Self::connect_to(endpoint).await
    }

    /// Connects to a given endpoint rather than the one this process's variables name: the daemon
    /// builds each workspace on the engine its user's shell chose.
    pub async fn connect_to(endpoint: Endpoint) -> Result<Engine, EngineError> {
        let unreachable = |reason: String| EngineError::Unreachable {
            endpoint: endpoint.host.clone(),
            source_desc: endpoint.origin.clone(),
            reason,
            hint: start_hint(&endpoint),
        };
        let host = endpoint.host.as_str();
        if !(host.starts_with("unix://")
            || host.starts_with('/')
            || host.starts_with("tcp://")
            || host.starts_with("http://"))
        {
            return Err(EngineError::UnsupportedScheme(host.to_string()));
        }
        // One `/_ping` tells the API version and the engine version (in its headers), where
        // bollard's negotiation asks `/version`, which makes the engine query containerd and
        // costs ten times as much: this runs on every command, hooks' background jobs included.
        let (headers, _) = tokio::time::timeout(CONNECT_TIMEOUT, raw_get(&endpoint.host, "/_ping"))
            .await
            .map_err(|_| unreachable("no answer within 5 s".into()))?
            .map_err(unreachable)?;
        let header = |name: &str| {
            headers.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let server = header("Server").unwrap_or_default();
        let engine_version = server
            .strip_prefix("Docker/")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        let ours = bollard::API_DEFAULT_VERSION;
        let version = header("Api-Version")
            .and_then(|v| {
                let (major, minor) = v.split_once('.')?;
                Some(bollard::ClientVersion {
                    major_version: major.parse().ok()?,
                    minor_version: minor.parse().ok()?,
                })
            })
            .filter(|v| v < ours)
            .unwrap_or(*ours);
        // Builds and long listings must not be cut off by a short timeout.
        let timeout = 3600;
        let docker = match host.strip_prefix("unix://") {
            Some(path) => Docker::connect_with_unix(path, timeout, &version),
            None if host.starts_with('/') => Docker::connect_with_unix(host, timeout, &version),
            None => Docker::connect_with_http(host, timeout, &version),
        }
        .map_err(|e| unreachable(short_reason(&e)))?;
        Ok(Engine {
            docker,
            endpoint,
            engine_version,
        })
    }

    /// The API version negotiated with the engine, e.g. "1.41".
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// Which `.dockerignore` rules this engine's BuildKit applies (they changed after 20.10).
    pub fn ignore_dialect(&self) -> crate::ignore::Dialect {
        crate::ignore::Dialect::for_engine_version(&self.engine_version)
    }

    /// The minor part of the API version (41 for 1.41).
    pub fn api_minor(&self) -> usize {
        self.docker.client_version().minor_version
    }

    /// The ID of a local image, or None when the engine does not have it.
    pub async fn image_id(&self, reference: &str) -> Result<Option<String>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => Ok(image.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Engine {
    /// A raw GET of an API path, for responses whose shape changed across API versions in ways
    /// bollard's typed models (written for the newest API) no longer read: `/system/df` lists
    /// volume sizes under `Volumes` up to API 1.51 and under `VolumeUsage.Items` after.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, EngineError> {
        let fail = |reason: String| EngineError::Unreachable {
            endpoint: self.endpoint.host.clone(),
            source_desc: self.endpoint.origin.clone(),
            reason,
            hint: start_hint(&self.endpoint),
        };
        let (_, body) = raw_get(
            &self.endpoint.host,
            &format!("/v{}{path}", self.api_version()),
        )
        .await
        .map_err(fail)?;
        serde_json::from_slice(&body).map_err(|e| fail(format!("{path}: {e}")))
    }

    /// A raw POST of an API path without a body, for query parameters bollard's typed options
    /// no longer carry (`/build/prune?keep-storage=`, which API 1.48 replaced).
    pub async fn post_json(&self, path: &str) -> Result<serde_json::Value, EngineError> {
        let fail = |reason: String| EngineError::Unreachable {
            endpoint: self.endpoint.host.clone(),
            source_desc: self.endpoint.origin.clone(),
            reason,
            hint: start_hint(&self.endpoint),
        };
        let (_, body) = raw_request(
            "POST",
            &self.endpoint.host,
            &format!("/v{}{path}", self.api_version()),
        )
        .await
        .map_err(fail)?;
        serde_json::from_slice(&body).map_err(|e| fail(format!("{path}: {e}")))
    }
}

/// Writes the request on a fresh connection and reads the whole response.
async fn exchange<S>(stream: std::io::Result<S>, request: &str) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = stream?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

/// GET `path` over HTTP/1.0 (the engine then closes the connection, so reading to the end is
/// the whole response); returns the header block and the body.
async fn raw_get(host: &str, path: &str) -> Result<(String, Vec<u8>), String> {
    raw_request("GET", host, path).await
}

/// `method path` over HTTP/1.0 without a body; returns the header block and the body.
async fn raw_request(method: &str, host: &str, path: &str) -> Result<(String, Vec<u8>), String> {
    let length = if method == "GET" {
        ""
    } else {
        "Content-Length: 0\r\n"
    };
    let request =
        format!("{method} {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: dockwarm\r\n{length}\r\n");
    let socket = host
        .strip_prefix("unix://")
        .or(host.starts_with('/').then_some(host));
    let response = match socket {
        Some(socket) => exchange(tokio::net::UnixStream::connect(socket).await, &request).await,
        None => {
            let addr = host
                .trim_start_matches("tcp://")
                .trim_start_matches("http://");
            exchange(tokio::net::TcpStream::connect(addr).await, &request).await
        }
    }
    .map_err(|e| e.to_string())?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| "malformed HTTP response".to_string())?;
    let headers = String::from_utf8_lossy(&response[..split]).into_owned();
    if !headers.starts_with("HTTP/1.")
        || !headers
            .split_whitespace()
            .nth(1)
            .is_some_and(|c| c.starts_with('2'))
    {
        return Err(format!(
            "{path}: {}",
            headers.lines().next().unwrap_or("no status line")
        ));
    }
    Ok((headers, response[split + 4..].to_vec()))
}

/// True for the engine's 404: a missing image, volume or container.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn short_reason(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::SocketNotFoundError(path) => format!("no socket at {path}"),
        other => {
            let text = other.to_string();
            text.lines().next().unwrap_or_default().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_metadata_is_found_by_the_hash_of_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let hash = hex::encode(Sha256::digest(b"colima"));
        let meta = dir.path().join("contexts/meta").join(hash);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"colima","Endpoints":{"docker":{"Host":"unix:///Users/me/.colima/default/docker.sock"}}}"#,
        )
        .unwrap();
        let e = context_endpoint(dir.path(), "colima", "test").unwrap();
        assert_eq!(e.host, "unix:///Users/me/.colima/default/docker.sock");
        assert!(context_endpoint(dir.path(), "nope", "test").is_err());
    }

    #[test]
    fn the_endpoint_comes_from_the_environment_given() {
        let dir = tempfile::tempdir().unwrap();
        let host = Env::from_vars([("DOCKER_HOST", "tcp://10.0.0.1:2375")]);
        let e = resolve_endpoint(&host).unwrap();
        assert_eq!(
            (e.host.as_str(), e.origin.as_str()),
            ("tcp://10.0.0.1:2375", "DOCKER_HOST")
        );
        // An empty DOCKER_HOST is unset: the (absent) config.json of DOCKER_CONFIG decides.
        let config = dir.path().display().to_string();
        let none = Env::from_vars([("DOCKER_HOST", ""), ("DOCKER_CONFIG", config.as_str())]);
        assert_ne!(resolve_endpoint(&none).unwrap().origin, "DOCKER_HOST");
        let engine = EngineEnv::from_env(&host);
        assert_eq!(engine.docker_host.as_deref(), Some("tcp://10.0.0.1:2375"));
        assert_eq!(engine.docker_context, None);
    }

    #[test]
    fn current_context_is_read_from_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        assert_eq!(current_context(&path).unwrap(), None);
        std::fs::write(&path, r#"{"auths":{},"currentContext":"orbstack"}"#).unwrap();
        assert_eq!(current_context(&path).unwrap().as_deref(), Some("orbstack"));
        std::fs::write(&path, "{not json").unwrap();
        assert!(current_context(&path).is_err());
    }
}
