//! A real Docker Distribution registry on loopback (Debian's `docker-registry`), optionally
//! behind htpasswd, and a package index stand-in that counts what builds fetch from it.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{sh, wait_for};

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `docker-registry serve` on a free loopback port with a temp storage dir.
pub struct TestRegistry {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    /// Open to anyone, or with `auth = Some((user, password))` behind htpasswd (bcrypt).
    pub fn start(auth: Option<(&str, &str)>) -> TestRegistry {
        TestRegistry::start_with(auth, false)
    }

    /// Served over TLS with a certificate for 127.0.0.1 from a test CA (`ca_path`).
    pub fn start_tls() -> TestRegistry {
        TestRegistry::start_with(None, true)
    }

    /// The test CA's certificate of a TLS registry (for SSL_CERT_FILE).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_with(auth: Option<(&str, &str)>, tls: bool) -> TestRegistry {
        let binary = "docker-registry";
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {binary}")])
                .output()
                .is_ok_and(|o| o.status.success()),
            "no `docker-registry` (apt-get install docker-registry; scripts/ensure-engine.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let line = sh(Command::new("htpasswd").args(["-Bbn", user, password])).stdout;
            std::fs::write(dir.path().join("htpasswd"), line).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: dockwarm-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        if tls {
            let d = dir.path();
            let openssl = |args: &[&str]| {
                sh(Command::new("openssl").args(args).current_dir(d));
            };
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=dockwarm-test-ca",
            ]);
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ]);
            std::fs::write(
                d.join("ext"),
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            openssl(&[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "1",
                "-extfile",
                "ext",
            ]);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                d.join("cert.pem").display(),
                d.join("key.pem").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = TestRegistry { port, dir, child };
        // Plain HTTP to a TLS port gets an answer too (400): either way it listens.
        wait_for("the registry to answer", Duration::from_secs(30), || {
            http_status(port, "/v2/").is_some()
        });
        registry
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status line's code of `GET path` on a loopback port, if anything answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A package index stand-in on loopback: answers every GET with a small file and counts them.
/// Builds reach it with `network: host`; a dependency step that did not run fetched nothing.
pub struct PackageIndex {
    pub port: u16,
    fetched: Arc<AtomicUsize>,
}

impl PackageIndex {
    pub fn start() -> PackageIndex {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fetched = Arc::new(AtomicUsize::new(0));
        let count = fetched.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if request.starts_with(b"GET ") {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let body = "package-1.0\n";
                let _ = write!(
                    stream,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        PackageIndex { port, fetched }
    }

    /// Packages fetched so far.
    pub fn fetched(&self) -> usize {
        self.fetched.load(Ordering::SeqCst)
    }
}

/// A docker client configuration directory (DOCKER_CONFIG) holding `config.json`, with the
/// user's CLI plugins (compose, buildx) linked in so the clients stay the same.
pub fn docker_config(root: &Path, config_json: &str) -> PathBuf {
    let dir = root.join("docker-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json).unwrap();
    let home = std::env::var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".docker"));
    let plugins = home.join("cli-plugins");
    if plugins.is_dir() && !dir.join("cli-plugins").exists() {
        std::os::unix::fs::symlink(&plugins, dir.join("cli-plugins")).unwrap();
    }
    dir
}

/// `{"auths": {HOST: {"auth": base64(user:password)}}}`
pub fn auths_json(host: &str, user: &str, password: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#)
}
