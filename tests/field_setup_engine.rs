//! What the field test on a real project found (issue 15): archived workspaces that came back,
//! volume regressions `doctor` missed, Conductor settings replaced, base images changed under
//! their tag, the cost of a cold warm-up, and the demo's leftovers. Real git, real engine.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{self, engine, image_id, path_env, wait_for, Project};
use crate::workspaces_engine::{compose_project, daemon_idle_after, project};

fn registered(p: &Project) -> usize {
    std::fs::read_dir(p.state.join("workspaces"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn daemon_status(p: &Project) -> serde_json::Value {
    let out = p.dockwarm(&["daemon", "status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Point 6: the hooks are shared by all worktrees; an archived one's next git command must
/// neither register it again nor tag its images, until `dockwarm init` there again.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn an_archived_worktree_stays_quiet_until_init() {
    engine();
    let p = project();
    p.ok(&["init"]);
    let tag = format!("{}-app", compose_project(&p.root));
    wait_for(
        "the workspace image and the daemon's job",
        Duration::from_secs(120),
        || image_id(&tag).is_some() && daemon_idle_after(&p, 1),
    );
    let out = p.ok(&["archive"]);
    assert!(out.contains("unregistered"), "{out}");
    assert!(image_id(&tag).is_none(), "archive removed the tag");
    assert_eq!(registered(&p), 0);

    let out = p.user_git(&p.root, &["checkout", "-q", "--detach", "HEAD"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!said.contains("dockwarm"), "the hook spoke: {said}");
    assert_eq!(registered(&p), 0, "the checkout registered it again");
    let d = &daemon_status(&p)["daemon"];
    assert!(
        d["queued"].as_array().is_none_or(|a| a.is_empty())
            && d["running"].as_array().is_none_or(|a| a.is_empty()),
        "the daemon was handed the archived workspace: {d}"
    );
    assert!(image_id(&tag).is_none(), "its image was tagged again");

    // `init` brings it back: registered, and its image tagged by the daemon.
    p.ok(&["init"]);
    assert_eq!(registered(&p), 1);
    wait_for("the tag again", Duration::from_secs(120), || {
        image_id(&tag).is_some()
    });
    p.user_git(&p.root, &["checkout", "-q", "-b", "again"]);
    assert_eq!(registered(&p), 1);
}

/// Point 8: `init --print-conductor` merges dockwarm's lines into the repository's own
/// Conductor settings, never replacing their scripts, and adds nothing already there.
#[test]
fn print_conductor_merges_the_repository_settings() {
    let p = Project::new(&[
        (
            "conductor.json",
            r#"{"scripts": {"setup": "cp \"$CONDUCTOR_ROOT_PATH/.env\" .env\nuv sync", "archive": "docker compose down", "run": "make dev"}, "runScriptMode": "nonconcurrent"}"#,
        ),
        (
            ".conductor/settings.toml",
            "[scripts]\nsetup = \"npm ci && dockwarm init\"\n\n[env]\nA = \"1\"\n",
        ),
    ]);
    let out = p.ok(&["init", "--print-conductor"]);
    let json_part = out
        .split("# ")
        .find(|s| s.contains("conductor.json"))
        .expect("the conductor.json part");
    let json: serde_json::Value =
        serde_json::from_str(json_part.split_once('\n').unwrap().1.trim()).unwrap();
    assert_eq!(
        json["scripts"]["setup"],
        "cp \"$CONDUCTOR_ROOT_PATH/.env\" .env\nuv sync\ndockwarm init"
    );
    assert_eq!(
        json["scripts"]["archive"],
        "dockwarm archive\ndocker compose down"
    );
    assert_eq!(json["scripts"]["run"], "make dev");
    assert_eq!(json["runScriptMode"], "nonconcurrent");

    let toml_part = out
        .split("# ")
        .find(|s| s.contains("settings.toml"))
        .expect("the settings.toml part");
    let toml: toml::Table = toml_part.split_once('\n').unwrap().1.parse().unwrap();
    assert_eq!(
        toml["scripts"]["setup"].as_str(),
        Some("npm ci && dockwarm init"),
        "already there: not added twice"
    );
    assert_eq!(
        toml["scripts"]["archive"].as_str(),
        Some("dockwarm archive")
    );
    assert_eq!(toml["env"]["A"].as_str(), Some("1"));

    // A file dockwarm cannot read is a configuration error naming it, not a template.
    p.write("conductor.json", "{\"scripts\": ");
    let bad = p.dockwarm(&["init", "--print-conductor"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("conductor.json"));
}

/// A Dockerfile with a dependency stage, so that `doctor`'s other checks stay quiet.
const DEPS_DOCKERFILE: &str = "FROM dockwarm-test/busybox:latest\nWORKDIR /app\nCOPY uv.lock ./\nRUN --mount=type=cache,target=/root/.cache/uv cat uv.lock\nCOPY . .\n";

fn doctor(p: &Project, dir: &Path) -> (Option<i32>, String) {
    let out = p.dockwarm_in(dir, &["doctor"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The `volumes shared` lines of a doctor report, each with its fix lines.
fn sharing(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.len() > 5 && !line.starts_with("     ") {
            inside = line[5..].starts_with("volumes shared");
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Removes test volumes by name when dropped (they carry the test label too).
struct Volumes(Vec<String>);

impl Drop for Volumes {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f"])
            .args(&self.0)
            .output();
    }
}

/// Point 2, the seed's regression: the compose file declares the shared cache volume without
/// `name:`, the setup script made a volume of exactly that bare name, and compose mounts a
/// per-workspace copy instead. `doctor` fails and gives the YAML that fixes it.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn doctor_sees_a_bare_named_volume_compose_will_not_mount() {
    engine();
    common::busybox();
    let p = Project::new(&[("Dockerfile", DEPS_DOCKERFILE), ("uv.lock", "x\n")]);
    let key = format!("{}_global_uv_cache", p.name);
    p.write(
        "compose.yaml",
        &format!("services:\n  app:\n    build: .\n    volumes:\n      - {key}:/root/.cache/uv\nvolumes:\n  {key}: {{}}\n"),
    );
    let _cleanup = Volumes(vec![key.clone()]);
    common::sh(Command::new("docker").args([
        "volume",
        "create",
        "--label",
        "dev.dockwarm.test=true",
        &key,
    ]));
    let (code, text) = doctor(&p, &p.root);
    let shared = sharing(&text);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        shared.starts_with("FAIL volumes shared")
            && shared.contains(&format!("compose mounts `{}_{key}`", p.name))
            && shared.contains(&format!("not the volume `{key}` that exists")),
        "{text}"
    );
    assert!(
        shared.contains(&format!(
            "volumes:\n         {key}:\n           name: {key}\n           external: true"
        )),
        "the fix is the YAML to add: {shared}"
    );

    // The fix, applied: compose mounts the existing volume; doctor is content.
    p.write(
        "compose.yaml",
        &format!("services:\n  app:\n    build: .\n    volumes:\n      - {key}:/root/.cache/uv\nvolumes:\n  {key}:\n    name: {key}\n    external: true\n"),
    );
    let (_, text) = doctor(&p, &p.root);
    let shared = sharing(&text);
    assert!(shared.starts_with("ok   volumes shared"), "{text}");
}

/// Point 2: a cache volume without `name:` that compose has already copied into several
/// workspaces (`docker compose up` in two worktrees) is found from the engine's volumes.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn doctor_sees_a_cache_volume_copied_into_several_workspaces() {
    engine();
    let busybox = common::busybox();
    let p = common::project()
        .dockerfile(DEPS_DOCKERFILE)
        .file("uv.lock", "x\n")
        .compose(&format!("services:\n  app:\n    build: .\n    volumes:\n      - uv_cache:/root/.cache/uv\n  cache:\n    image: {busybox}\n    command: [\"true\"]\n    volumes:\n      - uv_cache:/root/.cache/uv\nvolumes:\n  uv_cache: {{}}\n"))
        .build();
    let mut made = Vec::new();
    for w in ["w1", "w2"] {
        let dir = p.root.parent().unwrap().join(format!("{}-{w}", p.name));
        common::git(&p.root, &["worktree", "add", "-q", dir.to_str().unwrap()]);
        made.push(dir);
    }
    struct Down(Vec<std::path::PathBuf>);
    impl Drop for Down {
        fn drop(&mut self) {
            for dir in &self.0 {
                let _ = Command::new("docker")
                    .args(["compose", "down", "-v", "--remove-orphans"])
                    .current_dir(dir)
                    .output();
            }
        }
    }
    let _down = Down(made.clone());
    for dir in &made {
        common::sh(
            Command::new("docker")
                .args(["compose", "up", "--no-start", "cache"])
                .current_dir(dir),
        );
    }
    let (code, text) = doctor(&p, &p.root);
    let shared = sharing(&text);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        shared.starts_with("FAIL volumes shared")
            && shared.contains("mounted at /root/.cache/uv")
            && shared.contains(&format!("{}-w1_uv_cache", p.name))
            && shared.contains(&format!("{}-w2_uv_cache", p.name)),
        "{text}"
    );
    assert!(
        shared.contains("uv_cache = \"/root/.cache/uv\"")
            && shared.contains(&format!(
                "uv_cache:\n           name: {}_uv_cache\n           external: true",
                p.name
            )),
        "the fix: {shared}"
    );
}

/// Point 2 with `[volumes]` in dockwarm.toml: matched on the full name compose will use (a
/// compose key that is the shared name itself is still one copy per workspace), and the
/// message does not contradict itself in the main checkout, where the names coincide.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn doctor_matches_configured_volumes_on_the_name_compose_uses() {
    engine();
    common::busybox();
    let p = Project::new(&[("Dockerfile", DEPS_DOCKERFILE), ("uv.lock", "x\n")]);
    let shared_name = format!("{}_uv", p.name);
    p.write(
        "dockwarm.toml",
        &format!(
            "[project]\nname = \"{}\"\n[volumes]\nuv = \"/root/.cache/uv\"\n",
            p.name
        ),
    );
    // The compose key is the full shared name, without `name:`.
    p.write(
        "compose.yaml",
        &format!("services:\n  app:\n    build: .\n    volumes:\n      - {shared_name}:/root/.cache/uv\nvolumes:\n  {shared_name}: {{}}\n"),
    );
    let (code, text) = doctor(&p, &p.root);
    let shared = sharing(&text);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        shared.starts_with("FAIL volumes shared")
            && shared.contains(&format!("`{}_{shared_name}` here", p.name))
            && shared.contains(&format!("name: {shared_name}\n")),
        "{text}"
    );

    // The key `uv` in the main checkout: compose's name is the shared one only here.
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build: .\n    volumes:\n      - uv:/root/.cache/uv\nvolumes:\n  uv: {}\n",
    );
    let (code, text) = doctor(&p, &p.root);
    let shared = sharing(&text);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        shared.starts_with("FAIL volumes shared")
            && !shared.contains(&format!("not the shared `{shared_name}`"))
            && shared.contains("the same name only in this checkout"),
        "{text}"
    );
}

/// The first line of every build log of the project under the state dir, by file name.
fn first_log_lines(p: &Project) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(p.state.join("logs"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&p.name))
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        text.lines().next().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Point 7: each build log starts with the real command, every option included: target,
/// network, build args, cache-from, labels and tags (for bollard, the docker CLI command that
/// sends the same to the engine's /build endpoint). The buildx one runs as printed.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn build_logs_start_with_the_real_command() {
    engine();
    let p = project();
    p.write(
        "compose.yaml",
        "services:\n  app:\n    build:\n      context: .\n      target: runtime\n      network: host\n      args:\n        BASE: dockwarm-test/busybox:latest\n",
    );
    common::git(&p.root, &["commit", "-qam", "compose"]);
    p.ok(&["init"]);
    let cp = compose_project(&p.root);
    let tag = format!("{cp}-app");
    wait_for("the first warm-up", Duration::from_secs(120), || {
        image_id(&tag).is_some() && daemon_idle_after(&p, 1)
    });
    for backend in ["buildx", "bollard"] {
        p.write("src/main.sh", &format!("echo {backend}\n"));
        p.ok(&["prebuild", "--full", "--quiet", "--backend", backend, "app"]);
        let lines = first_log_lines(&p);
        assert!(lines.len() >= 2, "{lines:?}");
        for (file, line) in &lines {
            for needle in [
                "--network host",
                "--build-arg BASE=dockwarm-test/busybox:latest",
                "--label dev.dockwarm.managed=true",
                &format!("--label dev.dockwarm.project={}", p.name),
                " --tag ",
            ] {
                assert!(line.contains(needle), "{file}: no `{needle}` in {line}");
            }
        }
        let (_, ws_line) = lines
            .iter()
            .find(|(f, _)| f.ends_with("-workspace.log"))
            .expect("the workspace image's log");
        assert!(
            ws_line.contains("--target runtime")
                && ws_line.contains(&format!("--tag {tag}"))
                && ws_line.contains(&format!(
                    "--cache-from {}",
                    if backend == "buildx" {
                        format!("type=registry,ref=dockwarm/{}-app-deps:", p.name)
                    } else {
                        format!("dockwarm/{}-app-deps:", p.name)
                    }
                )),
            "{backend}: {ws_line}"
        );
        if backend == "buildx" {
            // What the log says is what ran: the same command, run by hand, builds (cached).
            let command = ws_line.trim_start_matches("# ");
            assert!(command.starts_with("docker buildx build "), "{command}");
            let out = Command::new("sh")
                .args(["-c", command])
                .current_dir(&p.root)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{command}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert!(
                ws_line.starts_with("# DOCKER_BUILDKIT=1 docker build "),
                "{ws_line}"
            );
        }
    }
}

/// Point 7, `config`: the build network is shown, and a value compose does not set is
/// "default", never attributed to a compose key that is not there; for images derived from
/// compose and for `[[image]]` entries that name a service alike.
#[test]
fn config_shows_the_network_and_never_a_key_that_is_not_set() {
    let p = Project::new(&[
        ("Dockerfile", DEPS_DOCKERFILE),
        ("uv.lock", "x\n"),
        (
            "compose.yaml",
            "services:\n  web:\n    build:\n      context: .\n      network: host\n  worker:\n    build: .\n",
        ),
    ]);
    let row = |text: &str, image: &str, key: &str| -> String {
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("image ") {
                inside = line.split_whitespace().nth(1) == Some(image);
            } else if inside && line.trim_start().starts_with(&format!("{key} ")) {
                return line
                    .split_whitespace()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join(" ");
            }
        }
        panic!("no `{key}` row for image {image}:\n{text}")
    };
    for with_toml in [false, true] {
        if with_toml {
            p.write(
                "dockwarm.toml",
                "[[image]]\nname = \"web\"\nservices = [\"web\"]\n[[image]]\nname = \"worker\"\nservices = [\"worker\"]\n",
            );
        }
        let text = p.ok(&["config"]);
        let network = row(&text, "web", "network");
        assert!(
            network.starts_with("host (") && network.contains("services.web.build.network"),
            "{with_toml}: {network}\n{text}"
        );
        for image in ["web", "worker"] {
            let target = row(&text, image, "target");
            assert_eq!(target, "(last stage) (default)", "{with_toml}:\n{text}");
        }
        let network = row(&text, "worker", "network");
        assert!(network.ends_with("(default)"), "{with_toml}: {network}");
        let json = p.json(&["config"]);
        assert_eq!(json["images"][0]["network"]["value"], "host", "{json}");
    }
}

/// What the demo may leave on the engine: images, volumes, networks and containers of its
/// projects (`demo`, `second`) and its base image.
fn demo_traces() -> std::collections::BTreeSet<String> {
    let list = |args: &[&str]| -> Vec<String> {
        let out = Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let ours = |s: &str| {
        s.starts_with("demo")
            || s.starts_with("second")
            || s.starts_with("dockwarm/demo-")
            || s.starts_with("dockwarm-example/")
    };
    let mut out = std::collections::BTreeSet::new();
    for (kind, args) in [
        (
            "image",
            &["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"][..],
        ),
        ("volume", &["volume", "ls", "--format", "{{.Name}}"][..]),
        ("network", &["network", "ls", "--format", "{{.Name}}"][..]),
        ("container", &["ps", "-a", "--format", "{{.Names}}"][..]),
    ] {
        for name in list(args).into_iter().filter(|n| ours(n)) {
            out.insert(format!("{kind} {name}"));
        }
    }
    for id in list(&[
        "image",
        "ls",
        "-q",
        "--filter",
        "label=dev.dockwarm.project=demo",
    ]) {
        out.insert(format!("image {id} (labelled for demo)"));
    }
    out
}

/// The processes of this user whose environment points at a demo's state dir.
fn demo_processes() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| {
            let env = std::fs::read(e.path().join("environ")).ok()?;
            let env = String::from_utf8_lossy(&env);
            env.split('\0')
                .any(|v| v.starts_with("DOCKWARM_STATE_DIR=/tmp/dockwarm-demo."))
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect()
}

/// Point 11: `scripts/demo.sh`, the README's main command, cleans up everything it made: the
/// compose-built image of the second workspace, the example base image it imported, its
/// dockwarm images, volume, containers, networks and daemon.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn the_demo_leaves_nothing_behind() {
    engine();
    let before = demo_traces();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("PATH", path_env())
        .env_remove("DOCKWARM_STATE_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("docker compose up --no-build"), "{said}");
    let after = demo_traces();
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(left.is_empty(), "the demo left {left:?}\n{said}");
    wait_for("the demo's daemon to go", Duration::from_secs(60), || {
        demo_processes().is_empty()
    });
}

/// Point 10: a cold warm-up (nothing of this project built yet) runs the dependency steps
/// once: the workspace image is built first, and the dependency image after it finds every
/// step CACHED and exports no layer of its own (its layers are the workspace image's first
/// ones). A counter in a cache mount of this project's own counts the runs of the install.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_cold_warm_up_runs_the_dependency_steps_once_buildx() {
    cold_warm_up("buildx");
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_cold_warm_up_runs_the_dependency_steps_once_bollard() {
    cold_warm_up("bollard");
}

fn cold_warm_up(backend: &str) {
    engine();
    common::busybox();
    let p = common::project()
        .compose("services:\n  app:\n    build: .\n")
        .file("src/main.sh", "echo hi\n")
        .file_naming("Dockerfile", |name| format!(
            "FROM dockwarm-test/busybox:latest AS base\nWORKDIR /app\n\nFROM base AS deps\nCOPY deps.lock ./\nRUN --mount=type=cache,id={name},target=/cache/count \\\n    sh -c 'echo run >> /cache/count/runs && cp /cache/count/runs /app/runs && cat deps.lock'\n\nFROM deps AS runtime\nCOPY . .\n",
        ))
        .file_naming("deps.lock", |name| format!("pkg==1 # {name}\n"))
        .config(&format!("[build]\nbackend = \"{backend}\"\n"))
        .build();
    p.ok(&["init"]);
    let tag = format!("{}-app", compose_project(&p.root));
    wait_for(
        "the cold warm-up: workspace image, dependency image, the job's end",
        Duration::from_secs(180),
        || {
            image_id(&tag).is_some()
                && std::fs::read_dir(p.state.join("builds")).is_ok_and(|mut d| d.next().is_some())
                && daemon_idle_after(&p, 1)
        },
    );
    let status = p.json(&["prebuild", "app"]);
    assert_eq!(status[0]["status"], "already_built", "{status}");
    let deps_tag = status[0]["tag"].as_str().unwrap().to_string();
    let runs = |image: &str| {
        let out =
            common::sh(Command::new("docker").args(["run", "--rm", image, "cat", "/app/runs"]));
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(runs(&tag), 1, "the workspace image's install ran once");
    assert_eq!(
        runs(&deps_tag),
        1,
        "the dependency image ran no install of its own"
    );
    let layers = |image: &str| -> Vec<String> {
        let out = common::sh(Command::new("docker").args([
            "image",
            "inspect",
            "--format",
            "{{json .RootFS.Layers}}",
            image,
        ]));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (ws, deps) = (layers(&tag), layers(&deps_tag));
    assert!(
        ws.starts_with(&deps) && ws.len() > deps.len(),
        "the dependency image's layers are the workspace image's first ones:\n{deps:?}\n{ws:?}"
    );
    // Its log: every step CACHED.
    let log = std::fs::read_dir(p.state.join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("{}-app-", p.name)) && !name.ends_with("-workspace.log")
        })
        .expect("the dependency build's log");
    let text = std::fs::read_to_string(&log).unwrap();
    let command = if backend == "buildx" {
        "# docker buildx build "
    } else {
        "# DOCKER_BUILDKIT=1 docker build "
    };
    assert!(text.starts_with(command), "{backend}: {text}");
    let steps = common::steps(&text);
    assert!(!steps.is_empty(), "{text}");
    let ran: Vec<&String> = steps
        .iter()
        .filter(|(name, cached)| !cached && !name.contains("FROM ") && !name.contains("internal]"))
        .map(|(name, _)| name)
        .collect();
    assert!(ran.is_empty(), "steps that ran again: {ran:?}\n{text}");
}

/// Point 9: a base image changed under its tag (here: `docker import` of a changed rootfs
/// under the same tag, as a re-pull would do) is noticed by the running daemon through the
/// engine's image events, and the workspace is rebuilt on it: a new fingerprint is built and
/// tagged without any hook or command.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn the_daemon_rebuilds_when_a_base_image_changes_under_its_tag() {
    base_image_changes(false);
}

/// Point 9, the engine away: the change happens while the daemon cannot reach the engine (its
/// events are lost); the daemon's watcher reconnects and finds the moved base all the same.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_base_image_changed_while_the_engine_was_away_is_found_on_reconnect() {
    base_image_changes(true);
}

fn base_image_changes(outage: bool) {
    engine();
    common::busybox();
    let p = common::project()
        .compose("services:\n  app:\n    build: .\n")
        .file("src/main.sh", "echo hi\n")
        .file_naming("Dockerfile", |name| format!("FROM {name}-base:latest AS base\nWORKDIR /app\n\nFROM base AS deps\nCOPY deps.lock ./\nRUN cat deps.lock > /app/installed\n\nFROM deps AS runtime\nCOPY . .\n"))
        .file_naming("deps.lock", |name| format!("pkg==1 # {name}\n"))
        .build();
    let base = format!("{}-base:latest", p.name);
    common::import_busybox_with(&base, "v1");
    let first_base = image_id(&base).unwrap();
    /// Removes the base image replaced under its tag (test-labelled, untagged by then).
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["image", "rm", "-f", &self.0])
                .output();
        }
    }
    let _old_base = Gone(first_base.clone());
    // The daemon (started by `init`) reaches the engine through a proxy that can be stopped.
    let sock = p.tmp.path().join("engine.sock");
    let mut proxy = crate::daemon_engine::Proxy::new(sock.clone());
    let host = format!("unix://{}", sock.display());
    let via_proxy = [("DOCKER_HOST", host.as_str())];
    let out = p.dockwarm_env(&p.root, &["init"], &via_proxy);
    assert!(out.status.success(), "{out:?}");
    let tag = format!("{}-app", compose_project(&p.root));
    let fingerprint_of = |reference: &str| {
        let out = Command::new("docker")
            .args([
                "image",
                "inspect",
                "--format",
                "{{index .Config.Labels \"dev.dockwarm.fingerprint\"}}",
                reference,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    wait_for("the first warm-up", Duration::from_secs(120), || {
        image_id(&tag).is_some() && daemon_idle_after(&p, 1)
    });
    let first = fingerprint_of(&tag);
    assert_eq!(first.len(), 64, "{first}");

    // The base changes under its tag; nothing else happens.
    if outage {
        proxy.stop();
        // A window, not a wait: the daemon's watcher sees its stream end and starts waiting to
        // reconnect, and its status does not show that.
        std::thread::sleep(Duration::from_secs(2));
    }
    common::import_busybox_with(&base, "v2");
    if outage {
        // A window: the engine stays away past the change, across a reconnect attempt of the
        // watcher's (which nothing the daemon exposes reports).
        std::thread::sleep(Duration::from_secs(1));
        proxy.start();
    }
    assert_ne!(image_id(&base).unwrap(), first_base);
    let now = p.json(&["fingerprint"]);
    let fresh = now[0]["fingerprint"]
        .as_str()
        .or_else(|| now["images"][0]["fingerprint"].as_str())
        .unwrap_or_else(|| panic!("{now}"))
        .to_string();
    assert_ne!(fresh, first);
    wait_for(
        "the daemon's rebuild on the new base",
        Duration::from_secs(120),
        || fingerprint_of(&tag) == fresh && daemon_idle_after(&p, 2),
    );
    let deps = format!("dockwarm/{}-app-deps:{}", p.name, &fresh[..12]);
    assert!(image_id(&deps).is_some(), "{deps} was built");
}
