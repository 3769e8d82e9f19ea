//! Tells the integration tests whether a Docker engine answers, so that without one the engine
//! tests are reported as *ignored* with the reason instead of being counted as passed. Under
//! `DOCKWARM_REQUIRE_ENGINE=1` (what CI sets) they always run, and fail when no engine answers.
//!
//! The probe is one `GET /_ping` on the engine's socket with a one-second timeout: no docker CLI,
//! no side effects, and it cannot hang a build (or `cargo install`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(dockwarm_no_engine)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=DOCKER_HOST");
    println!("cargo::rerun-if-env-changed=DOCKWARM_REQUIRE_ENGINE");
    if std::env::var("DOCKWARM_REQUIRE_ENGINE").as_deref() == Ok("1") {
        return;
    }
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    let answers = if let Some(addr) = host.strip_prefix("tcp://") {
        ping_tcp(addr)
    } else {
        let socket = PathBuf::from(
            host.strip_prefix("unix://")
                .filter(|p| !p.is_empty())
                .unwrap_or("/var/run/docker.sock"),
        );
        // The socket is made anew when an engine starts: a start or stop reruns this probe.
        println!("cargo::rerun-if-changed={}", socket.display());
        ping_unix(&socket)
    };
    if !answers {
        println!("cargo::rustc-cfg=dockwarm_no_engine");
    }
}

fn ping(mut stream: impl Read + Write) -> bool {
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = [0u8; 12];
    stream.read_exact(&mut answer).is_ok()
        && answer.starts_with(b"HTTP/1.")
        && &answer[9..12] == b"200"
}

fn ping_unix(socket: &std::path::Path) -> bool {
    let Ok(stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    ping(stream)
}

fn ping_tcp(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Some(addr) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    ping(stream)
}
