//! `dockwarm logs [IMAGE] [-f]`: the newest build log of each of this workspace's images.
//!
//! A dependency build's log is shared by every workspace with that fingerprint; the workspace
//! image's log is this workspace's own. The newer of the two is the one that explains what the
//! user just saw, so that is the one shown; `-f` follows it and moves on to a newer build's log
//! when one starts.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config;
use crate::state::State;

pub fn run(dir: &Path, image: Option<&str>, follow: bool) -> anyhow::Result<()> {
    let config = config::load(dir)?;
    let names: Vec<String> = image.map(|i| vec![i.to_string()]).unwrap_or_default();
    let selected = config.select(&names)?;
    let state = State::open()?;
    let newest = |name: &str| newest_log(&state, &config, name);
    let mut shown = 0;
    for spec in &selected {
        let Some(path) = newest(&spec.name) else {
            continue;
        };
        shown += 1;
        if !follow || selected.len() > 1 {
            println!("==> {} <==", path.display());
            std::io::stdout().write_all(&std::fs::read(&path)?)?;
        }
    }
    if shown == 0 {
        anyhow::bail!(
            "no build log yet for {} (the daemon's own log: {})",
            selected
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            crate::daemon::client::log_path(&state).display()
        );
    }
    if !follow {
        return Ok(());
    }
    if selected.len() > 1 {
        anyhow::bail!("-f follows one image's log: name it (`dockwarm logs IMAGE -f`)");
    }
    let name = selected[0].name.clone();
    let mut current: Option<(PathBuf, u64)> = None;
    loop {
        if let Some(path) = newest(&name) {
            if current.as_ref().is_none_or(|(p, _)| *p != path) {
                println!("==> {} <==", path.display());
                current = Some((path, 0));
            }
        }
        if let Some((path, offset)) = current.as_mut() {
            let mut f = std::fs::File::open(&*path)?;
            let len = f.metadata()?.len();
            if len < *offset {
                // Rewritten by a new build of the same fingerprint: start over.
                *offset = 0;
            }
            if len > *offset {
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

fn newest_log(state: &State, config: &config::Config, image: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = state
        .build_logs(&config.project.value, image)
        .into_iter()
        .take(1)
        .collect();
    if let Ok(ws) = state.log_path(&config.compose_project.value, image, "workspace") {
        if ws.exists() {
            candidates.push(ws);
        }
    }
    candidates.into_iter().max_by_key(|p| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    })
}
