//! `dockwarm prebuild [IMAGE...] [--background]`.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::{self, Backend};
use crate::engine::Engine;
use crate::prebuild::{self, Options, PrebuildError, Status};
use crate::state::State;

pub struct Args {
    pub images: Vec<String>,
    pub background: bool,
    pub backend: Option<Backend>,
    pub json: bool,
}

pub fn run(dir: &Path, args: Args) -> anyhow::Result<()> {
    let config = config::load(dir)?;
    let selected = config.select(&args.images)?;
    let state = State::open()?;
    if args.background {
        return spawn_background(&state, dir, &args);
    }
    let options = Options {
        backend: args.backend.unwrap_or(config.backend.value),
        quiet: args.json,
    };
    let rt = super::runtime()?;
    let outcomes = rt.block_on(async {
        let engine = Engine::connect().await?;
        let mut outcomes = Vec::new();
        for image in selected {
            match prebuild::prebuild_image(&engine, &state, &config, image, &options).await {
                Ok(o) => outcomes.push(o),
                Err(PrebuildError::Build {
                    image,
                    failure,
                    log,
                }) => {
                    for line in &failure.tail {
                        eprintln!("  {line}");
                    }
                    return Err(anyhow::Error::new(PrebuildError::Build {
                        image,
                        failure,
                        log,
                    }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::Ok(outcomes)
    })?;
    if args.json {
        return super::print_json(&outcomes);
    }
    for o in outcomes {
        let secs = o.duration_ms as f64 / 1000.0;
        match o.status {
            Status::Built => println!(
                "{}: built {} in {secs:.1}s ({})",
                o.image,
                o.tag,
                o.backend.as_deref().unwrap_or("?")
            ),
            Status::AlreadyBuilt => println!("{}: already built {}", o.image, o.tag),
        }
    }
    Ok(())
}

/// Starts `dockwarm prebuild` detached from this process and terminal; its output goes to the
/// state directory's log.
fn spawn_background(state: &State, dir: &Path, args: &Args) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let log_path = state.dir("logs")?.join("prebuild-background.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    let mut cmd = Command::new(exe);
    cmd.arg("prebuild").args(&args.images).current_dir(dir);
    if let Some(b) = args.backend {
        cmd.arg("--backend").arg(format!("{b:?}").to_lowercase());
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: a Ctrl-C in the terminal that started it does not stop it.
        .process_group(0);
    let child = cmd.spawn()?;
    println!(
        "prebuild started in the background (pid {}); log: {}",
        child.id(),
        log_path.display()
    );
    Ok(())
}
