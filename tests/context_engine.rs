//! Checks `write_tar` against the real Docker engine: the files a BuildKit `COPY . /ctx`
//! sees for a context with a tricky `.dockerignore` must be exactly the tar's entries, and
//! a build fed our tar must find the `COPY` of the user's build CACHED.
//!
//! Everything created is tagged `dockwarm-test/...` and removed at the end. The test is
//! skipped (with a message) only when `docker info` fails.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common;

use dockwarm::context::{list_tar, write_tar};
use dockwarm::ignore::{Dialect, IgnoreRules};

const DOCKER: &str = "/usr/bin/docker";
const LABEL: &str = "dockwarm-test/owner=context_engine";

fn docker(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .expect("run docker")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the images this test tagged, even when an assertion fails.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = docker(&["image", "rm", "-f", image]);
        }
    }
}

/// Per-process base tag, so parallel runs sharing the engine don't remove each other's.
fn base() -> String {
    format!("dockwarm-test/busybox:ctx-{}", std::process::id())
}

fn write(root: &Path, rel: &str, data: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

const IGNORE: &str = "\
# comment line
**/*.pyc
node_modules
/secret
build/
!build/keep.txt
*.txt
!keep.txt
docs/**/draft*
[a-c].md
\\#hash
vendor
!vendor/**/keep.me
Dockerfile
.dockerignore
";

fn dockerfile() -> String {
    format!(
        "FROM {}\nCOPY src /src\nRUN find /src | sort > /srclist\nCOPY . /ctx\nRUN find /ctx | sort > /list\n",
        base()
    )
}

fn make_context(root: &Path, nonce: &str) {
    write(root, ".dockerignore", IGNORE);
    write(root, "Dockerfile", &dockerfile());
    write(root, "src/app.py", "print('hi')\n");
    write(root, "src/nonce", nonce);
    write(root, "src/app.pyc", "junk");
    write(root, "src/deep/x.pyc", "junk");
    write(root, "src/run.sh", "#!/bin/sh\n");
    fs::set_permissions(root.join("src/run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink("app.py", root.join("src/link.py")).expect("symlink");
    write(root, "node_modules/m/index.js", "x");
    write(root, "web/node_modules/y.js", "y");
    write(root, "secret/key", "k");
    write(root, "build/out.bin", "b");
    write(root, "build/keep.txt", "keep");
    write(root, "notes.txt", "n");
    write(root, "keep.txt", "keep");
    write(root, "sub/notes.txt", "n");
    write(root, "docs/a/b/draft1.md", "d");
    write(root, "docs/a/final.md", "f");
    write(root, "a.md", "a");
    write(root, "d.md", "d");
    write(root, "#hash", "h");
    write(root, "vendor/p/keep.me", "k");
    write(root, "vendor/p/other", "o");
    write(root, "vendor/q/other", "o");
    fs::create_dir_all(root.join("emptydir")).expect("mkdir");
}

fn build_id_of(progress: &str, step: &str) -> Option<String> {
    progress
        .lines()
        .find(|l| l.contains(step) && l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

#[test]
#[cfg_attr(
    dockwarm_no_engine,
    ignore = "needs a Docker engine (none answered when this was built)"
)]
fn buildkit_sees_exactly_the_tar() {
    common::engine();
    let work = tempfile::tempdir().expect("tempdir");
    let nonce = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
    let tag = std::process::id();
    let dir_image = format!("dockwarm-test/ctx-dir:{tag}");
    let tar_image = format!("dockwarm-test/ctx-tar:{tag}");
    let _cleanup = Cleanup(vec![dir_image.clone(), tar_image.clone(), base()]);
    common::import_busybox_with(&base(), "context_engine");

    let ctx = work.path().join("ctx");
    make_context(&ctx, &nonce);
    let ctx_str = ctx.to_str().expect("utf-8 path");

    // The user's own build of the directory.
    ok(
        docker(&[
            "build",
            "--progress=plain",
            "--label",
            LABEL,
            "-t",
            &dir_image,
            ctx_str,
        ]),
        "docker build of the directory",
    );
    let seen = ok(
        docker(&["run", "--rm", &dir_image, "cat", "/list"]),
        "cat /list",
    );
    let mut seen: Vec<String> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("/ctx/"))
        .map(str::to_string)
        .collect();
    seen.sort();

    let version = ok(
        docker(&["version", "--format", "{{.Server.Version}}"]),
        "docker version",
    );
    let dialect = Dialect::for_engine_version(&version);
    eprintln!("engine {} -> {dialect:?}", version.trim());
    let rules = IgnoreRules::load(&ctx, Path::new("Dockerfile"))
        .expect("rules")
        .with_dialect(dialect);
    let mut tar = Vec::new();
    write_tar(&ctx, &rules, &[], &mut tar).expect("write_tar");
    let mut ours: Vec<String> = list_tar(tar.as_slice())
        .expect("list tar")
        .into_iter()
        .map(|n| n.trim_end_matches('/').to_string())
        .collect();
    ours.sort();
    assert_eq!(ours, seen, "tar entries vs what BuildKit copied");

    // dockwarm's side: the same Dockerfile sent inside our tar. The `COPY src` layer must
    // come from the cache of the build above, and `COPY .` must see the same files.
    let extra = vec![(
        ".dockwarm/Dockerfile.deps".to_string(),
        dockerfile().into_bytes(),
    )];
    let mut tar = Vec::new();
    write_tar(&ctx, &rules, &extra, &mut tar).expect("write_tar with extra");
    let mut child = Command::new(DOCKER)
        .args([
            "build",
            "--progress=plain",
            "--label",
            LABEL,
            "-t",
            &tar_image,
            "-f",
            ".dockwarm/Dockerfile.deps",
            "-",
        ])
        .env("DOCKER_BUILDKIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker build -");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&tar).expect("send tar");
    }
    let out = child.wait_with_output().expect("docker build -");
    let progress = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "build from our tar failed:\n{progress}"
    );
    let step = build_id_of(&progress, "COPY src /src").expect("COPY step in progress");
    assert!(
        progress.contains(&format!("{step} CACHED")),
        "COPY src /src was not CACHED when built from our tar:\n{progress}"
    );
    let seen_tar = ok(
        docker(&["run", "--rm", &tar_image, "cat", "/list"]),
        "cat /list",
    );
    let mut seen_tar: Vec<String> = seen_tar
        .lines()
        .filter_map(|l| l.strip_prefix("/ctx/"))
        .filter(|l| !l.starts_with(".dockwarm"))
        .map(str::to_string)
        .collect();
    seen_tar.sort();
    assert_eq!(
        seen_tar, seen,
        "files seen from our tar vs from the directory"
    );
}
