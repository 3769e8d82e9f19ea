//! `docker buildx build`, the way compose v2 builds.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{BuildFailure, Request};
use crate::progress::BuildLog;

/// The docker CLI, when its buildx plugin answers.
pub async fn find() -> Option<PathBuf> {
    version().await.map(|_| PathBuf::from("docker"))
}

/// The output of `DOCKER buildx ARG`, when it answers within 10 s and succeeds.
async fn buildx_output(docker: &Path, arg: &str) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(docker)
            .args(["buildx", arg])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `docker buildx version`'s version field, e.g. "0.13.1+ds1".
pub async fn version() -> Option<String> {
    let text = buildx_output(Path::new("docker"), "version").await?;
    Some(
        text.split_whitespace()
            .nth(1)
            .unwrap_or("unknown")
            .to_string(),
    )
}

/// The selected builder's driver (`docker`, `docker-container`, `kubernetes`, `remote`), as
/// `docker buildx inspect` says.
pub async fn driver(docker: &Path) -> Option<String> {
    buildx_output(docker, "inspect")
        .await?
        .lines()
        .find_map(|l| l.strip_prefix("Driver:"))
        .map(|d| d.trim().to_string())
}

pub async fn build(
    docker: &Path,
    req: &Request<'_>,
    log: &mut BuildLog,
) -> Result<(), BuildFailure> {
    let fail = |message: String| BuildFailure::plain(message);
    let dockerfile = match req.dockerfile_text {
        None => req.dockerfile_path.to_path_buf(),
        Some(text) => {
            // buildx looks for `<Dockerfile>.dockerignore` beside the Dockerfile before the
            // context's `.dockerignore`: carry the user's over so both see the same files.
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(req.scratch_dir)
                    .map_err(|e| fail(format!("{}: {e}", req.scratch_dir.display())))?;
            }
            let generated = req.scratch_dir.join("Dockerfile");
            crate::state::create_private(&generated)
                .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
                .map_err(|e| fail(format!("{}: {e}", generated.display())))?;
            let own_ignore =
                PathBuf::from(format!("{}.dockerignore", req.dockerfile_path.display()));
            let copied = req.scratch_dir.join("Dockerfile.dockerignore");
            if own_ignore.is_file() {
                std::fs::read(&own_ignore)
                    .and_then(|bytes| {
                        let mut f = crate::state::create_private(&copied)?;
                        std::io::Write::write_all(&mut f, &bytes)
                    })
                    .map_err(|e| fail(format!("{}: {e}", own_ignore.display())))?;
            } else {
                let _ = std::fs::remove_file(&copied);
            }
            generated
        }
    };
    let args = req.cli_args(&dockerfile, true);
    let mut cmd = Command::new(docker);
    cmd.args(&args);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // The real command, every option included: what the user runs to reproduce the build.
    log.line(&format!(
        "# {}",
        super::shell_line(&docker.display().to_string(), &args)
    ));
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot run docker buildx: {e}")))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(fail("docker buildx: no output pipes".into()));
    };
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let (mut out_done, mut err_done) = (false, false);
    let mut last_error = None;
    while !(out_done && err_done) {
        tokio::select! {
            line = out.next_line(), if !out_done => match line {
                Ok(Some(l)) => log.line(&l),
                _ => out_done = true,
            },
            line = err.next_line(), if !err_done => match line {
                Ok(Some(l)) => {
                    if let Some(msg) = l.strip_prefix("ERROR: ") {
                        last_error = Some(msg.to_string());
                    }
                    log.line(&l);
                }
                _ => err_done = true,
            },
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| fail(format!("docker buildx: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        let message =
            last_error.unwrap_or_else(|| format!("docker buildx build exited with {status}"));
        Err(BuildFailure::from_log(log, message))
    }
}
