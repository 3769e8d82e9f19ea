//! The team registry with two engines on one machine: engine A prebuilds and pushes to a real
//! registry (Debian's `docker-registry`), engine B (a second dockerd with empty stores) pulls
//! instead of building, and a registry that is down, refuses the password or lacks the tag
//! leaves B building locally with one clear line. The dependency step fetches from a counting
//! package index, so "B did not run it" is counted, not inferred.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::second_engine::SecondEngine;
use crate::common::team::{self, PackageIndex, TestRegistry};
use crate::common::{self, busybox, engine, path_env, sh, steps, wait_for, Project};

fn dockerfile(index_port: u16) -> String {
    format!(
        "FROM dockwarm-test/busybox:latest
WORKDIR /app
COPY deps.lock ./
RUN busybox wget -q -O /app/package http://127.0.0.1:{index_port}/simple/package && cat deps.lock > /app/installed
COPY . .
CMD [\"cat\", \"/app/installed\"]
"
    )
}

/// A repository whose dependency step fetches from `index`, sharing through `registry`.
fn team_project(registry_url: &str, index: &PackageIndex) -> Project {
    busybox();
    let registry_url = registry_url.to_string();
    common::project()
        .dockerfile(&dockerfile(index.port))
        .compose("services:\n  app:\n    build:\n      context: .\n      network: host\n")
        .file("src/main.sh", "echo hi\n")
        // The project name is committed: clones in other directories share the registry's names.
        .file_naming("dockwarm.toml", move |name| {
            format!("[project]\nname = \"{name}\"\n\n[registry]\nurl = \"{registry_url}\"\n")
        })
        .file_naming("deps.lock", |name| format!("package==1.0\n# {name}\n"))
        .build()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json_ok(p: &Project, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = p.dockwarm_env(dir, args, env);
    assert!(out.status.success(), "dockwarm {args:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("dockwarm {args:?}: {e}: {}", text(&out)))
}

/// Stops the daemon a test started through `init`, even when the test fails.
struct DaemonGuard<'a> {
    p: &'a Project,
    dir: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Drop for DaemonGuard<'_> {
    fn drop(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let _ = self.p.dockwarm_env(&self.dir, &["daemon", "stop"], &env);
    }
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn engine_b_pulls_what_engine_a_pushed_and_the_users_build_finds_it_cached() {
    engine();
    pull_on_b("buildx");
}

/// The same through the engine's `/build` endpoint on both engines: the README says the user's
/// build is warm there too.
#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn engine_b_pulls_and_the_users_build_finds_it_cached_with_the_bollard_backend() {
    engine();
    pull_on_b("bollard");
}

fn pull_on_b(backend: &str) {
    let registry = TestRegistry::start(None);
    let index = PackageIndex::start();
    let p = team_project(&format!("{}/team", registry.host()), &index);

    // Engine A: built once (one package fetched), pushed before returning.
    let a = json_ok(
        &p,
        &p.root,
        &["prebuild", "--push", "--json"],
        &[("DOCKWARM_BACKEND", backend)],
    );
    assert_eq!(a[0]["backend"], backend, "{a}");
    assert_eq!(a[0]["source"], "built", "{a}");
    let line = a[0]["registry"].as_str().unwrap_or_default();
    assert!(line.contains("pushed fingerprint"), "{a}");
    assert_eq!(index.fetched(), 1);
    let fp = a[0]["fingerprint"].as_str().unwrap().to_string();

    // Engine B: empty stores, the same base image (same ID), a fresh clone.
    let b = SecondEngine::start();
    b.load_from_first(busybox());
    let clone = p.tmp.path().join("clone-b");
    sh(Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(&p.root)
        .arg(&clone));
    let state_b = p.tmp.path().join("state-b");
    let env_b = [
        ("DOCKER_HOST", b.host.as_str()),
        ("DOCKWARM_STATE_DIR", state_b.to_str().unwrap()),
        ("PATH", &path_env()),
        ("DOCKWARM_BACKEND", backend),
    ];
    let _daemon = DaemonGuard {
        p: &p,
        dir: clone.clone(),
        env: env_b
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let init = p.dockwarm_env(&clone, &["init"], &env_b);
    assert!(init.status.success(), "init on B: {}", text(&init));

    // Its compose image is tagged, from the pulled dependency layers.
    wait_for(
        "B's compose image clone-b-app",
        Duration::from_secs(180),
        || b.has_image("clone-b-app"),
    );
    let deps_tag = format!("dockwarm/{}-app-deps:{}", p.name, &fp[..12]);
    assert!(b.has_image(&deps_tag), "B has no {deps_tag}");
    assert_eq!(index.fetched(), 1, "B ran the dependency step");
    let workspace_log = std::fs::read_dir(state_b.join("logs"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-workspace.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("no workspace build log on B");
    let header = if backend == "bollard" {
        "# bollard build"
    } else {
        "# docker buildx build"
    };
    assert!(workspace_log.contains(header), "{workspace_log}");
    let status = json_ok(&p, &clone, &["status", "--json"], &env_b);
    let image = &status["workspaces"][0]["images"][0];
    assert_eq!(image["last_build"]["status"], "pulled", "{status}");
    let last = &status["team_registry"][0]["last_event"];
    assert!(
        last["line"]
            .as_str()
            .unwrap_or_default()
            .contains("pulled fingerprint"),
        "{status}"
    );

    // The user's own build on B: the dependency steps CACHED, still one package fetched.
    let _ = p.dockwarm_env(&clone, &["daemon", "stop"], &env_b);
    let build = Command::new("docker")
        .args(["compose", "build", "--progress=plain"])
        .current_dir(&clone)
        .env("DOCKER_HOST", &b.host)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "compose build on B: {}",
        text(&build)
    );
    let log = String::from_utf8_lossy(&build.stderr).into_owned()
        + &String::from_utf8_lossy(&build.stdout);
    let run = steps(&log)
        .into_iter()
        .find(|(name, _)| name.contains("RUN busybox wget"))
        .unwrap_or_else(|| panic!("no RUN step in:\n{log}"));
    assert!(run.1, "the dependency step ran on B:\n{log}");
    assert_eq!(index.fetched(), 1, "B fetched packages:\n{log}");

    if backend != "buildx" {
        return;
    }
    // The README's exception: after `docker builder prune` a pulled image is no build cache,
    // unless the compose file names it in `cache_from` (tried first), and without it the
    // dependency step runs again (then).
    let compose_build = || {
        let out = Command::new("docker")
            .args(["compose", "build", "--progress=plain"])
            .current_dir(&clone)
            .env("DOCKER_HOST", &b.host)
            .output()
            .unwrap();
        assert!(out.status.success(), "compose build on B: {}", text(&out));
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let cached = steps(&log)
            .into_iter()
            .find(|(name, _)| name.contains("RUN busybox wget"))
            .unwrap_or_else(|| panic!("no RUN step in:\n{log}"))
            .1;
        (cached, log)
    };
    sh(b.docker().args(["builder", "prune", "-af"]));
    let remote = format!("{}/team/{}-app-deps:{fp}", registry.host(), p.name);
    std::fs::write(
        clone.join("compose.override.yaml"),
        format!("services:\n  app:\n    build:\n      cache_from: [\"{remote}\"]\n"),
    )
    .unwrap();
    let (cached, log) = compose_build();
    assert!(
        cached,
        "cache_from the registry did not serve the step:\n{log}"
    );
    assert_eq!(index.fetched(), 1);
    std::fs::remove_file(clone.join("compose.override.yaml")).unwrap();
    sh(b.docker().args(["builder", "prune", "-af"]));
    let (cached, log) = compose_build();
    assert!(!cached, "CACHED without build cache:\n{log}");
    assert_eq!(index.fetched(), 2);
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn a_registry_down_a_wrong_password_or_a_missing_tag_leave_b_building_locally() {
    engine();
    let registry = TestRegistry::start(Some(("dw", "right-password")));
    let url = format!("{}/team", registry.host());
    let index = PackageIndex::start();
    let p = team_project(&url, &index);
    let b = SecondEngine::start();
    b.load_from_first(busybox());
    let host = registry.host();
    let good = team::docker_config(
        &p.tmp.path().join("good"),
        &team::auths_json(&host, "dw", "right-password"),
    );
    let bad = team::docker_config(
        &p.tmp.path().join("bad"),
        &team::auths_json(&host, "dw", "wrong-password"),
    );
    let state_b = p.tmp.path().join("state-b");
    let on_b = |config: &Path, extra: &[(&str, &str)], args: &[&str]| -> Output {
        let mut env = vec![
            ("DOCKER_HOST", b.host.as_str()),
            ("DOCKWARM_STATE_DIR", state_b.to_str().unwrap()),
            ("DOCKER_CONFIG", config.to_str().unwrap()),
        ];
        env.extend_from_slice(extra);
        p.dockwarm_env(&p.root, args, &env)
    };
    let prebuild = |config: &Path, extra: &[(&str, &str)]| -> serde_json::Value {
        let out = on_b(config, extra, &["prebuild", "--json"]);
        assert!(out.status.success(), "prebuild on B: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // 1. The registry lacks the tag: built locally, one line; then pushed in the background
    //    with the credentials docker's config holds.
    let r = prebuild(&good, &[]);
    assert_eq!(r[0]["source"], "built", "{r}");
    let line = r[0]["registry"].as_str().unwrap_or_default().to_string();
    assert!(line.contains("does not hold fingerprint"), "{r}");
    assert_eq!(index.fetched(), 1);
    wait_for("the background push", Duration::from_secs(120), || {
        let out = on_b(&good, &[], &["registry", "status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["images"][0]["current_held"] == true
    });
    let status = on_b(&good, &[], &["registry", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["access"], "authenticated", "{v}");
    assert_eq!(v["images"][0]["fingerprints"], 1, "{v}");
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("right-password"),
        "a credential was printed"
    );

    // 2. A wrong password: built locally, one line saying so and what to do.
    p.write("deps.lock", &format!("package==2.0\n# {}\n", p.name));
    let r = prebuild(&bad, &[]);
    assert_eq!(r[0]["source"], "built", "{r}");
    let line = r[0]["registry"].as_str().unwrap_or_default();
    assert!(line.contains("refused the credentials"), "{r}");
    assert!(line.contains(&format!("docker login {host}")), "{r}");
    assert!(!line.contains("wrong-password"), "{r}");
    assert_eq!(index.fetched(), 2);
    let doctor = on_b(&bad, &[], &["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(said.contains("FAIL team registry"), "{said}");
    assert!(said.contains(&format!("docker login {host}")), "{said}");
    let doctor = on_b(&good, &[], &["doctor"]);
    let said = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(
        said.contains("ok   team registry:") && said.contains("authenticated as dw (from auths)"),
        "{said}"
    );
    let refused = on_b(&bad, &[], &["registry", "status", "--json"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let v: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert!(
        v["last_event"]["line"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{v}"
    );

    // 3. The registry is down: built locally, one line.
    p.write("deps.lock", &format!("package==3.0\n# {}\n", p.name));
    let down = format!("127.0.0.1:{}/team", team::free_port());
    let r = prebuild(&good, &[("DOCKWARM_REGISTRY", &down)]);
    assert_eq!(r[0]["source"], "built", "{r}");
    let line = r[0]["registry"].as_str().unwrap_or_default();
    assert!(line.contains("unreachable"), "{r}");
    assert_eq!(index.fetched(), 3);
    // Only `prebuild --push` (CI) fails on a registry error: it was asked to fill it.
    let ci = on_b(
        &good,
        &[("DOCKWARM_REGISTRY", &down)],
        &["prebuild", "--push"],
    );
    assert_eq!(ci.status.code(), Some(1), "{}", text(&ci));
    let stderr = String::from_utf8_lossy(&ci.stderr);
    assert!(stderr.contains("unreachable"), "{}", text(&ci));

    // 4. Credentials from a helper (`credHelpers`, docker's helper protocol): the first
    //    fingerprint, removed from B, comes back pulled.
    p.write("deps.lock", &format!("package==1.0\n# {}\n", p.name));
    let bin = p.tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-dwtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"dw\",\"Secret\":\"right-password\"}' \"$server\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let helped = team::docker_config(
        &p.tmp.path().join("helped"),
        &format!(r#"{{"credHelpers":{{"{host}":"dwtest"}}}}"#),
    );
    let path = format!("{}:{}", bin.display(), path_env());
    let fp = fingerprint_on_b(&p, &b, &state_b);
    let deps_tag = format!("dockwarm/{}-app-deps:{}", p.name, &fp[..12]);
    sh(b.docker().args(["rmi", &deps_tag]));
    let r = prebuild(&helped, &[("PATH", &path)]);
    assert_eq!(r[0]["source"], "pulled", "{r}");
    assert_eq!(index.fetched(), 3, "the pulled fingerprint was built again");
}

fn fingerprint_on_b(p: &Project, b: &SecondEngine, state: &Path) -> String {
    let v = json_ok(
        p,
        &p.root,
        &["fingerprint", "--json"],
        &[
            ("DOCKER_HOST", b.host.as_str()),
            ("DOCKWARM_STATE_DIR", state.to_str().unwrap()),
        ],
    );
    v[0]["fingerprint"].as_str().unwrap().to_string()
}

#[test]
fn a_registry_url_dockwarm_cannot_use_is_a_configuration_error_naming_the_file() {
    let p = Project::new(&[
        ("Dockerfile", "FROM scratch\nCOPY a.lock ./\n"),
        ("a.lock", "x\n"),
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
    ]);
    for (url, says) in [
        ("myteam/cache", "does not start with a registry host"),
        (
            "http://cache.example:5000/t",
            "plain HTTP is only used for loopback",
        ),
    ] {
        p.write("dockwarm.toml", &format!("[registry]\nurl = \"{url}\"\n"));
        let out = p.dockwarm_env(&p.root, &["config"], &[("DOCKWARM_COMPOSE", "builtin")]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("dockwarm.toml"), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    // Listed as insecure, plain HTTP is allowed; `config` says where the setting came from.
    p.write(
        "dockwarm.toml",
        "[registry]\nurl = \"http://cache.example:5000/t\"\ninsecure = [\"cache.example\"]\n",
    );
    let out = p.dockwarm_env(&p.root, &["config"], &[("DOCKWARM_COMPOSE", "builtin")]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cache.example:5000/t (plain HTTP allowed)")
            && stdout.contains("[registry] url"),
        "{stdout}"
    );
}

#[test]
fn a_tls_registry_is_spoken_to_over_https_first() {
    let registry = TestRegistry::start_tls();
    let p = Project::new(&[
        ("Dockerfile", "FROM scratch\nCOPY a.lock ./\n"),
        ("a.lock", "x\n"),
        ("compose.yaml", "services:\n  app:\n    build: .\n"),
    ]);
    p.write(
        "dockwarm.toml",
        &format!("[registry]\nurl = \"{}/team\"\n", registry.host()),
    );
    let ca = registry.ca_path();
    let env = [
        ("DOCKWARM_COMPOSE", "builtin"),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
    ];
    let out = p.dockwarm_env(&p.root, &["registry", "status", "--json"], &env);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reachable"], true, "{v}");
    assert_eq!(v["access"], "anonymous", "{v}");
    assert_eq!(v["images"][0]["fingerprints"], 0, "{v}");
}
