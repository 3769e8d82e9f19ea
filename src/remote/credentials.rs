//! Registry credentials where docker itself keeps them: `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`) `credHelpers` for the host, else `credsStore`, else `auths`.
//! Helpers are run with docker's protocol (`docker-credential-NAME get`, the server on stdin,
//! `{"Username","Secret"}` on stdout). A credential is never printed or logged: its `Debug`
//! says only who it is for.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

use crate::env::Env;

/// A user name with a password or token, for one registry.
#[derive(Clone)]
pub struct Credentials {
    /// Who we are to the registry: shown by `registry status`, unlike the secret.
    pub username: String,
    secret: String,
    /// An identity token (a helper's `<token>` user, or `identitytoken` in `auths`).
    pub identity_token: bool,
    /// Where it came from ("credHelpers pass", "auths"), for `registry status`.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, from {})", self.username, self.source)
    }
}

impl Credentials {
    /// The secret, for the request that needs it and nothing else.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `Authorization: Basic ...` for this user.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// What the engine's push and pull take (bollard's `X-Registry-Auth`).
    pub fn for_engine(&self, server: &str) -> bollard::auth::DockerCredentials {
        if self.identity_token {
            bollard::auth::DockerCredentials {
                identitytoken: Some(self.secret.clone()),
                serveraddress: Some(server.to_string()),
                ..Default::default()
            }
        } else {
            bollard::auth::DockerCredentials {
                username: Some(self.username.clone()),
                password: Some(self.secret.clone()),
                serveraddress: Some(server.to_string()),
                ..Default::default()
            }
        }
    }
}

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// docker's config.json cannot be read or parsed, or an `auths` entry is malformed.
    #[error("{path}: {reason}; fix the file or run `docker login`")]
    Config {
        /// The config.json read.
        path: String,
        /// What is wrong with it (the entry, when one is at fault).
        reason: String,
    },
    /// The credential helper docker is configured with did not answer usably.
    #[error("credential helper `docker-credential-{helper}` failed for {host}: {reason}")]
    Helper {
        /// The helper's name (`docker-credential-` is prefixed to run it).
        helper: String,
        /// The registry host it was asked about.
        host: String,
        /// How it ended: could not start, no answer within 10 s, an exit status or an
        /// unreadable answer (never the helper's own words, which may quote a secret).
        reason: String,
    },
}

/// docker's client configuration file, where `env` puts it.
pub fn config_path(env: &Env) -> Option<PathBuf> {
    match env.docker_config() {
        Some(dir) => Some(dir.join("config.json")),
        None => env.home().map(|h| h.join(".docker/config.json")),
    }
}

#[derive(Default, serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
}

#[derive(Default, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The credentials docker would use for `host` (as written in image names), if any, with
/// docker's configuration where `env` puts it.
pub fn lookup(env: &Env, host: &str) -> Result<Option<Credentials>, CredentialError> {
    let Some(path) = config_path(env) else {
        return Ok(None);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialError::Config {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let config: DockerConfig =
        serde_json::from_str(&text).map_err(|e| CredentialError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    lookup_in(&config, host, &path.display().to_string())
}

fn lookup_in(
    config: &DockerConfig,
    host: &str,
    path: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let server = server_address(host);
    if let Some(helper) = config.cred_helpers.get(host) {
        return from_helper(helper, host, &server);
    }
    if let Some(helper) = config.creds_store.as_deref().filter(|s| !s.is_empty()) {
        if let Some(found) = from_helper(helper, host, &server)? {
            return Ok(Some(found));
        }
    }
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| normalize(key) == normalize(&server))
        .map(|(_, e)| e);
    let Some(entry) = entry else {
        return Ok(None);
    };
    let source = "auths".to_string();
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials {
            username: entry.username.clone().unwrap_or_default(),
            secret: token.clone(),
            identity_token: true,
            source,
        }));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bad = |reason: &str| CredentialError::Config {
            path: path.to_string(),
            reason: format!("auths.\"{server}\".auth {reason}"),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("is not base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
        let (user, secret) = decoded
            .split_once(':')
            .ok_or_else(|| bad("is not user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            secret: secret.to_string(),
            identity_token: false,
            source,
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.clone(),
            secret: p.clone(),
            identity_token: false,
            source,
        })),
        _ => Ok(None),
    }
}

/// The name docker files a registry's credentials under (Docker Hub keeps its old URL).
fn server_address(host: &str) -> String {
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_string()
        }
        h => h.to_string(),
    }
}

/// `https://host/v1/` and `host` are the same key to docker.
fn normalize(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    if key.starts_with("index.docker.io") {
        return "index.docker.io";
    }
    key.split('/').next().unwrap_or(key)
}

/// `docker-credential-NAME get`; None when the helper holds nothing for the server.
fn from_helper(
    helper: &str,
    host: &str,
    server: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let fail = |reason: String| CredentialError::Helper {
        helper: helper.to_string(),
        host: host.to_string(),
        reason,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    // A helper that waits on a keychain prompt must not hang a background build.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("no answer within 10 s".into()));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // docker's helpers say this when they hold nothing for the server.
        if stdout.contains("credentials not found")
            || String::from_utf8_lossy(&out.stderr).contains("credentials not found")
        {
            return Ok(None);
        }
        // The helper's own words may quote what it was given: say only how it ended.
        return Err(fail(format!("exited with {}", out.status)));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_str(stdout.trim())
        .map_err(|_| fail("its answer is not the JSON docker's helper protocol uses".into()))?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        identity_token: answer.username == "<token>",
        username: answer.username,
        secret: answer.secret,
        source: format!("docker-credential-{helper}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn auths_by_host_in_any_spelling() {
        let c = config(r#"{"auths":{"https://127.0.0.1:5000":{"auth":"dXNlcjpwYXNz"}}}"#);
        let found = lookup_in(&c, "127.0.0.1:5000", "x").unwrap().unwrap();
        assert_eq!(found.username, "user");
        assert_eq!(found.secret(), "pass");
        assert!(lookup_in(&c, "127.0.0.1:5001", "x").unwrap().is_none());
        let hub = config(r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#);
        assert!(lookup_in(&hub, "docker.io", "x").unwrap().is_some());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = config(r#"{"auths":{"r.io":{"username":"u","password":"hunter2"}}}"#);
        let found = lookup_in(&c, "r.io", "x").unwrap().unwrap();
        assert!(!format!("{found:?}").contains("hunter2"));
    }

    #[test]
    fn a_missing_helper_is_an_error_naming_it() {
        let c = config(r#"{"credHelpers":{"r.io":"dockwarm-test-absent"}}"#);
        let e = lookup_in(&c, "r.io", "x").unwrap_err().to_string();
        assert!(e.contains("docker-credential-dockwarm-test-absent"), "{e}");
    }
}
