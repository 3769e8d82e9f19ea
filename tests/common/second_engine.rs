//! A second Docker engine on this machine ("engine B"): its own dockerd with its own data
//! root, exec root, socket and bridge, so it starts with an empty image store and an empty
//! BuildKit cache. Stopped (by its pid) and its bridge deleted when dropped.
//!
//! Never `--bridge=none`: that deletes the host's `docker0` and breaks the first engine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{sh, wait_for};

pub struct SecondEngine {
    /// `unix:///.../docker.sock`: what DOCKER_HOST is set to for this engine.
    pub host: String,
    dir: tempfile::TempDir,
    bridge: String,
    child: Child,
}

impl SecondEngine {
    /// Starts the engine and waits until it answers.
    pub fn start() -> SecondEngine {
        let dir = tempfile::Builder::new().prefix("dwb").tempdir().unwrap();
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let bridge = format!("dwb{id}");
        // A /24 no interface uses yet.
        let used = String::from_utf8_lossy(&sh(Command::new("ip").args(["-4", "addr"])).stdout)
            .into_owned();
        // Engines started by one test process never share a /24 (a counter); other processes
        // start elsewhere (the random id) and skip what is in use.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let start = (u32::from_str_radix(id, 16).unwrap()
            + 37 * NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
            % 230
            + 20;
        let third = (start..=250)
            .chain(20..start)
            .find(|n| !used.contains(&format!("10.213.{n}.")))
            .expect("no free 10.213.x.0/24");
        sh(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]));
        sh(Command::new("ip").args([
            "addr",
            "add",
            &format!("10.213.{third}.1/24"),
            "dev",
            &bridge,
        ]));
        sh(Command::new("ip").args(["link", "set", &bridge, "up"]));
        let driver = String::from_utf8_lossy(
            &sh(Command::new("docker").args(["info", "--format", "{{.Driver}}"])).stdout,
        )
        .trim()
        .to_string();
        let path = |name: &str| dir.path().join(name);
        // Its own (empty) daemon.json: the host's may set data-root or the storage driver,
        // which dockerd refuses to take from both a flag and the file.
        std::fs::write(path("daemon.json"), "{}").unwrap();
        for d in ["data", "exec"] {
            std::fs::create_dir_all(path(d)).unwrap();
        }
        let socket = path("docker.sock");
        let log = std::fs::File::create(path("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(path("daemon.json"))
            .arg("--data-root")
            .arg(path("data"))
            .arg("--exec-root")
            .arg(path("exec"))
            .arg("--pidfile")
            .arg(path("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver",
                &driver,
            ])
            .arg(format!("--bridge={bridge}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start a second dockerd");
        let engine = SecondEngine {
            host: format!("unix://{}", socket.display()),
            dir,
            bridge,
            child,
        };
        wait_for(
            "the second engine to answer",
            Duration::from_secs(60),
            || {
                engine
                    .docker()
                    .args(["info", "--format", "{{.ServerVersion}}"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        );
        engine
    }

    /// `docker` talking to this engine.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", &self.host);
        cmd
    }

    /// Copies an image of the first engine here (same ID): `docker save | docker load`.
    pub fn load_from_first(&self, image: &str) {
        let save = sh(Command::new("docker").args(["save", image]));
        let mut load = self
            .docker()
            .arg("load")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        load.stdin.take().unwrap().write_all(&save.stdout).unwrap();
        assert!(
            load.wait().unwrap().success(),
            "docker load into engine B failed"
        );
    }

    /// Whether this engine has an image of that name.
    pub fn has_image(&self, name: &str) -> bool {
        self.docker()
            .args(["image", "inspect", name])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.path().join("dockerd.pid")
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        // The dockerd this guard started, by its own pid; it stops its containerd itself.
        let pid = self.child.id() as i32;
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(self.pidfile());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        // Layers may be left mounted by a killed engine: unmount before the temp dir goes.
        let data = self.dir.path().join("data");
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let prefix = data.display().to_string();
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|p| p.starts_with(&prefix))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).output();
            }
        }
    }
}
