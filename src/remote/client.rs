//! The registry's HTTP API (distribution v2), for the questions that need no engine: is it
//! there, does it accept us, does it hold a tag, which tags does a repository hold. Every
//! request has a short deadline: a registry that does not answer costs seconds, never a build.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use super::credentials::Credentials;
use super::reference::TeamRegistry;
use super::RemoteError;

/// How long one request may take before the registry counts as unreachable.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// How an unreachable line starts when the registry stayed silent (no fallback then).
const NO_ANSWER: &str = "no answer within";

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// What the registry said to `GET /v2/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Open to anyone.
    Anonymous,
    /// It asked for credentials and accepted ours.
    Authenticated,
}

/// A client of one registry, with the credentials docker would use for it.
pub struct Client {
    registry: TeamRegistry,
    credentials: Option<Credentials>,
    http: HyperClient<Connector, Full<Bytes>>,
    /// `https://host` or, found by the first request to a plain-HTTP host, `http://host`.
    base: std::sync::Mutex<Option<String>>,
}

impl Client {
    /// A client for `registry` (HTTPS, or HTTP too when plain HTTP is allowed); no request
    /// is made until the first question.
    pub fn new(
        registry: &TeamRegistry,
        credentials: Option<Credentials>,
    ) -> Result<Client, RemoteError> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| RemoteError::Unreachable {
                registry: registry.to_string(),
                reason: format!("no TLS root certificates: {e}"),
            })?;
        let connector = if registry.plain_http {
            builder.https_or_http().enable_http1().build()
        } else {
            builder.https_only().enable_http1().build()
        };
        Ok(Client {
            registry: registry.clone(),
            credentials,
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            base: std::sync::Mutex::new(None),
        })
    }

    /// Where the API answers. Like the engine with an insecure registry: HTTPS first, and
    /// plain HTTP when HTTPS fails (a TLS error, not a silence) on a host that allows it.
    async fn base(&self) -> Result<String, RemoteError> {
        if let Some(base) = self.base.lock().ok().and_then(|b| b.clone()) {
            return Ok(base);
        }
        let https = self.registry.api_base();
        let chosen = if !self.registry.plain_http {
            https
        } else {
            match self.send(Method::GET, &format!("{https}/v2/"), None).await {
                Ok(_) => https,
                Err(RemoteError::Unreachable { reason, .. }) if reason.starts_with(NO_ANSWER) => {
                    return Err(RemoteError::Unreachable {
                        registry: self.registry.to_string(),
                        reason,
                    })
                }
                Err(_) => format!("http://{}", self.registry.api_host()),
            }
        };
        if let Ok(mut b) = self.base.lock() {
            *b = Some(chosen.clone());
        }
        Ok(chosen)
    }

    /// Whether the registry answers and lets us in.
    pub async fn check(&self) -> Result<Access, RemoteError> {
        let (status, _, authenticated) = self.request(Method::GET, "/v2/").await?;
        match status {
            s if s.is_success() => Ok(if authenticated {
                Access::Authenticated
            } else {
                Access::Anonymous
            }),
            s => Err(self.unexpected(s, "/v2/")),
        }
    }

    /// Whether `repository:tag` exists.
    pub async fn has_tag(&self, repository: &str, tag: &str) -> Result<bool, RemoteError> {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let (status, _, _) = self.request(Method::HEAD, &path).await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.unexpected(s, &path)),
        }
    }

    /// The tags of `repository` (none when the registry has never seen it).
    pub async fn tags(&self, repository: &str) -> Result<Vec<String>, RemoteError> {
        let path = format!("/v2/{repository}/tags/list?n=10000");
        let (status, body, _) = self.request(Method::GET, &path).await?;
        match status {
            s if s.is_success() => {
                #[derive(serde::Deserialize)]
                struct Tags {
                    tags: Option<Vec<String>>,
                }
                let tags: Tags =
                    serde_json::from_slice(&body).map_err(|e| RemoteError::Protocol {
                        registry: self.registry.to_string(),
                        reason: format!("{path}: {e}"),
                    })?;
                Ok(tags.tags.unwrap_or_default())
            }
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            s => Err(self.unexpected(s, &path)),
        }
    }

    fn unexpected(&self, status: StatusCode, path: &str) -> RemoteError {
        RemoteError::Protocol {
            registry: self.registry.to_string(),
            reason: format!("{path} answered {status}"),
        }
    }

    /// One request, answering an authentication challenge once (Basic, or a Bearer token
    /// from the realm it names). Returns the status, the body, and whether credentials were
    /// sent.
    async fn request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<(StatusCode, Bytes, bool), RemoteError> {
        let url = format!("{}{path}", self.base().await?);
        let (status, headers, body) = self.send(method.clone(), &url, None).await?;
        if status != StatusCode::UNAUTHORIZED {
            return Ok((status, body, false));
        }
        let challenge = headers
            .get(hyper::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let authorization = self.answer(&challenge).await?;
        let (status, _, body) = self.send(method, &url, Some(&authorization)).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.refused());
        }
        Ok((status, body, true))
    }

    fn refused(&self) -> RemoteError {
        RemoteError::Unauthorized {
            registry: self.registry.to_string(),
            reason: match &self.credentials {
                Some(c) => format!(
                    "the registry refused the credentials of `{}` ({})",
                    c.username, c.source
                ),
                None => "the registry wants credentials and docker has none for it".into(),
            },
            host: self.registry.host.clone(),
        }
    }

    /// The `Authorization` header answering `challenge`.
    async fn answer(&self, challenge: &str) -> Result<String, RemoteError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return match &self.credentials {
                Some(c) => Ok(c.basic_header()),
                None => Err(self.refused()),
            };
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RemoteError::Protocol {
                registry: self.registry.to_string(),
                reason: format!("unknown authentication scheme `{scheme}`"),
            });
        }
        let params = challenge_params(params);
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| RemoteError::Protocol {
                registry: self.registry.to_string(),
                reason: "a Bearer challenge without a realm".into(),
            })?;
        let mut url = realm;
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for (k, v) in params
            .iter()
            .filter(|(k, _)| k == "service" || k == "scope")
        {
            url.push(sep);
            url.push_str(&format!("{k}={}", query_escape(v)));
            sep = '&';
        }
        let basic = self.credentials.as_ref().map(Credentials::basic_header);
        let (status, _, body) = self.send(Method::GET, &url, basic.as_deref()).await?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.refused());
        }
        if !status.is_success() {
            return Err(RemoteError::Protocol {
                registry: self.registry.to_string(),
                reason: format!("its token service answered {status}"),
            });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body).map_err(|e| RemoteError::Protocol {
            registry: self.registry.to_string(),
            reason: format!("its token service's answer: {e}"),
        })?;
        token
            .token
            .or(token.access_token)
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| RemoteError::Protocol {
                registry: self.registry.to_string(),
                reason: "its token service gave no token".into(),
            })
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<(StatusCode, hyper::HeaderMap, Bytes), RemoteError> {
        let unreachable = |reason: String| RemoteError::Unreachable {
            registry: self.registry.to_string(),
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .header(
                hyper::header::ACCEPT,
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/json",
            )
            .header(hyper::header::USER_AGENT, "dockwarm");
        if let Some(a) = authorization {
            request = request.header(hyper::header::AUTHORIZATION, a);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(format!("bad request URL {url}: {e}")))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                // hyper's messages are vague ("tcp connect error"); the deepest cause says
                // what happened ("Connection refused").
                let mut detail = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    detail = c.to_string();
                    cause = c.source();
                }
                unreachable(detail)
            })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, RemoteError>((parts.status, parts.headers, body))
        };
        tokio::time::timeout(DEADLINE, exchange)
            .await
            .map_err(|_| unreachable(format!("{NO_ANSWER} {} s", DEADLINE.as_secs())))?
    }
}

/// `realm="https://x/token",service="x",scope="repository:a:pull"` as pairs.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, a)) => (v.to_string(), a),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, a)) => (v.trim().to_string(), a),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = after.trim_start_matches(',').trim();
    }
    out
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_bearer_challenge() {
        let p = challenge_params(
            r#"realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/c:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://ghcr.io/token".into()));
        assert_eq!(p[2], ("scope".into(), "repository:o/c:pull".into()));
        assert_eq!(query_escape("repository:o/c:pull"), "repository:o%2Fc:pull");
    }
}
