//! `dockwarm logs [IMAGE] [-f]`: the build logs of this workspace's current fingerprints, as
//! [`crate::status::current_logs`] finds them: the dependency build (its own, or the build of
//! the same fingerprint it found made) and its own workspace image's, oldest first. `-f`
//! follows them, and moves to a new fingerprint's logs when a checkout starts one.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::plan::{self, WorkspacePlan};
use crate::state::State;
use crate::workspace::Workspace;

/// How long `logs` gives the engine to compute the current fingerprint before it uses the
/// last one built here.
const ENGINE_BUDGET: Duration = Duration::from_millis(800);

/// Prints the build logs of `image` (each selected image when `None`) at its current
/// fingerprint, for the workspace holding `dir`; with `follow`, one image's, until interrupted.
pub fn run(
    env: &crate::env::Env,
    dir: &Path,
    image: Option<&str>,
    follow: bool,
) -> anyhow::Result<()> {
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    let rt = super::runtime()?;
    let engine = rt.block_on(async {
        tokio::time::timeout(ENGINE_BUDGET, crate::engine::Engine::connect(env))
            .await
            .ok()
            .and_then(|e| e.ok())
    });
    let dialect = engine
        .as_ref()
        .map(|e| e.ignore_dialect())
        .unwrap_or_else(|| plan::remembered_dialect(&state));
    let plan = WorkspacePlan::load(&state, &ws, dialect)?;
    let names: Vec<String> = image.map(|i| vec![i.to_string()]).unwrap_or_default();
    let selected: Vec<String> = plan
        .config
        .select(&names)?
        .into_iter()
        .map(|s| s.name.clone())
        .collect();
    if follow && selected.len() > 1 {
        anyhow::bail!("-f follows one image's logs: name it (`dockwarm logs IMAGE -f`)");
    }
    let current = |name: &str| {
        let Some(image_plan) = plan.image(name) else {
            return Vec::new();
        };
        rt.block_on(crate::status::current_logs(
            &state,
            engine.as_ref(),
            Instant::now() + ENGINE_BUDGET,
            &plan.config,
            image_plan,
        ))
    };
    let mut shown = 0;
    if !follow {
        for name in &selected {
            for path in current(name) {
                shown += 1;
                println!("==> {} <==", path.display());
                std::io::stdout().write_all(&std::fs::read(&path)?)?;
            }
        }
    } else {
        shown = current(&selected[0]).len();
    }
    if shown == 0 {
        anyhow::bail!(
            "no build log yet for {} at its current fingerprint (the daemon's own log: {})",
            selected.join(", "),
            crate::daemon::client::log_path(&state).display()
        );
    }
    if !follow {
        return Ok(());
    }
    // Offsets of the files followed; a header whenever the output moves to another file.
    let mut offsets: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut last: Option<PathBuf> = None;
    let mut resolved = Instant::now() - Duration::from_secs(60);
    let mut files = Vec::new();
    loop {
        if resolved.elapsed() >= Duration::from_secs(1) {
            files = current(&selected[0]);
            resolved = Instant::now();
        }
        for path in &files {
            let offset = offsets.entry(path.clone()).or_insert(0);
            let Ok(mut f) = std::fs::File::open(path) else {
                continue;
            };
            let len = f.metadata()?.len();
            if len < *offset {
                // Rewritten by a new build: start over.
                *offset = 0;
            }
            if len > *offset {
                if last.as_ref() != Some(path) {
                    println!("==> {} <==", path.display());
                    last = Some(path.clone());
                }
                f.seek(SeekFrom::Start(*offset))?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                std::io::stdout().write_all(&buf)?;
                std::io::stdout().flush()?;
                *offset += buf.len() as u64;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
