//! `[registry] url` parsed: which host dockwarm talks to, under which path, and whether plain
//! HTTP is allowed there.

/// A team registry as the configuration names it: `127.0.0.1:5000/myteam`, `ghcr.io/org/cache`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TeamRegistry {
    /// The host (and port) as written: the key of docker's credentials and of image names.
    pub host: String,
    /// The repository path under the host ("myteam"; empty for none).
    pub path: String,
    /// Plain HTTP: only for loopback hosts and hosts listed in `[registry] insecure`.
    pub plain_http: bool,
}

impl TeamRegistry {
    /// Parses `url` (an optional `https://` or `http://` in front); `insecure` lists the hosts
    /// (with port, or without to cover every port) that may be spoken to in plain HTTP.
    pub fn parse(url: &str, insecure: &[String]) -> Result<TeamRegistry, String> {
        let url = url.trim().trim_end_matches('/');
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) => (Some(s.to_ascii_lowercase()), rest),
            None => (None, url),
        };
        if let Some(s) = scheme.as_deref() {
            if s != "http" && s != "https" {
                return Err(format!(
                    "`{url}`: a registry is named without a scheme (or with https://), e.g. ghcr.io/org/cache"
                ));
            }
        }
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(format!(
                "`{url}` does not start with a registry host; name it, e.g. `127.0.0.1:5000/{rest}` or `ghcr.io/{rest}`"
            ));
        }
        let valid_path = path.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        });
        if !path.is_empty() && !valid_path {
            return Err(format!(
                "`{url}`: the repository path `{path}` must be lower case letters, digits, `.`, `_`, `-` and `/`"
            ));
        }
        let listed = insecure.iter().any(|h| {
            let h = h.trim().trim_start_matches("http://").trim_end_matches('/');
            h == host || host.split_once(':').is_some_and(|(name, _)| name == h)
        });
        let plain_http = is_loopback(host) || listed;
        if scheme.as_deref() == Some("http") && !plain_http {
            return Err(format!(
                "`{url}`: plain HTTP is only used for loopback registries or hosts listed in [registry] insecure"
            ));
        }
        Ok(TeamRegistry {
            host: host.to_string(),
            path: path.to_string(),
            plain_http,
        })
    }

    /// The repository of a dependency image: `myteam/<project>-<image>-deps`.
    pub fn repository(&self, project: &str, image: &str) -> String {
        let local = crate::fingerprint::repository(project, image);
        let name = local.trim_start_matches("dockwarm/");
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.path)
        }
    }

    /// The full reference of a fingerprint's dependency image in the registry.
    pub fn image_ref(&self, project: &str, image: &str, fingerprint: &str) -> String {
        format!("{}:{fingerprint}", self.engine_repository(project, image))
    }

    /// The repository as the engine names it for a pull or push: `host/repository`.
    pub fn engine_repository(&self, project: &str, image: &str) -> String {
        format!("{}/{}", self.host, self.repository(project, image))
    }

    /// The host the registry's HTTP API answers on (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        match self.host.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            h => h,
        }
    }

    /// The base URL of the registry's HTTP API over HTTPS (where a plain-HTTP host allows
    /// it, the client falls back to `http://` when HTTPS fails, as the engine does).
    pub fn api_base(&self) -> String {
        format!("https://{}", self.api_host())
    }
}

impl std::fmt::Display for TeamRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.host)
        } else {
            write!(f, "{}/{}", self.host, self.path)
        }
    }
}

/// localhost, 127.0.0.0/8 and ::1: where the engine itself allows plain HTTP by default.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host, |(name, _)| name)
    };
    if name == "localhost" {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_path() {
        let r = TeamRegistry::parse("127.0.0.1:5000/myteam", &[]).unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.path, "myteam");
        assert!(r.plain_http);
        assert_eq!(
            r.image_ref("adcp", "app", "abc"),
            "127.0.0.1:5000/myteam/adcp-app-deps:abc"
        );
        let r = TeamRegistry::parse("https://ghcr.io/org/cache/", &[]).unwrap();
        assert_eq!((r.host.as_str(), r.path.as_str()), ("ghcr.io", "org/cache"));
        assert!(!r.plain_http);
        assert_eq!(r.api_base(), "https://ghcr.io");
        let r = TeamRegistry::parse("localhost:5000", &[]).unwrap();
        assert_eq!(r.repository("p", "app"), "p-app-deps");
    }

    #[test]
    fn plain_http_only_to_loopback_or_listed_hosts() {
        assert!(TeamRegistry::parse("http://cache.lan:5000/t", &[]).is_err());
        let listed = ["cache.lan".to_string()];
        let r = TeamRegistry::parse("http://cache.lan:5000/t", &listed).unwrap();
        assert!(r.plain_http);
        assert!(
            !TeamRegistry::parse("cache.lan:5000/t", &[])
                .unwrap()
                .plain_http
        );
        assert!(TeamRegistry::parse("[::1]:5000/t", &[]).unwrap().plain_http);
        assert!(!is_loopback("128.0.0.1:5000"));
    }

    #[test]
    fn refuses_what_is_not_a_registry() {
        assert!(TeamRegistry::parse("myteam/cache", &[]).is_err());
        assert!(TeamRegistry::parse("ftp://x.io/a", &[]).is_err());
        assert!(TeamRegistry::parse("x.io/Team", &[]).is_err());
    }
}
