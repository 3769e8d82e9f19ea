//! `dockwarm volumes ensure|ls|rm`.

use std::path::Path;

use crate::config;
use crate::volumes::{self, human_size, Ensured};

/// What `dockwarm volumes` was asked to do with the shared cache volumes of `[volumes]`: clap's
/// subcommand, parsed in main.rs. The variant docs are the help text.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Create the shared volumes that are missing.
    // A same-named one dockwarm did not create is left as it is.
    Ensure {
        /// What was done to each volume, as JSON.
        // No help line, as before: `help = None` keeps `--json` bare in `--help`.
        #[arg(long, help = None)]
        json: bool,
    },
    /// List the shared volumes and their sizes.
    // Size, state (ok, missing, foreign) and where they are mounted.
    Ls {
        /// The rows as JSON.
        #[arg(long, help = None)]
        json: bool,
    },
    /// Remove shared volumes (default: this project's); never one dockwarm did not create.
    // `volumes::remove` refuses any dockwarm did not create or a container uses, before
    // removing anything.
    Rm {
        /// The volumes to remove; none: all of this project's.
        #[arg(help = None)]
        names: Vec<String>,
        /// What was removed, as JSON.
        #[arg(long, help = None)]
        json: bool,
    },
}

/// Runs `dockwarm volumes ACTION` on the engine for the project holding `dir`, printing text or,
/// with `--json`, what the library answered.
pub fn run(env: &crate::env::Env, dir: &Path, action: Action) -> anyhow::Result<()> {
    let json = match action {
        Action::Ensure { json } | Action::Ls { json } | Action::Rm { json, .. } => json,
    };
    let config = config::load(dir, env)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let engine = super::connect(&crate::state::State::open(env)?).await?;
        match action {
            Action::Ensure { .. } => {
                let done = volumes::ensure(&engine, &config).await?;
                if json {
                    return super::print_json(&done);
                }
                if done.is_empty() {
                    println!("no shared volumes configured (add [volumes] to dockwarm.toml)");
                }
                for (name, what) in done {
                    let what = match what {
                        Ensured::Created => "created",
                        Ensured::Present => "present",
                        Ensured::PresentForeign => {
                            "present (not created by dockwarm; left as it is)"
                        }
                    };
                    println!("{name}: {what}");
                }
            }
            Action::Ls { .. } => {
                let rows = volumes::list(&engine, &config).await?;
                if json {
                    return super::print_json(&rows);
                }
                println!("{:<32} {:>10}  {:<8} MOUNTED AT", "VOLUME", "SIZE", "STATE");
                for r in rows {
                    let size = r.size.map(human_size).unwrap_or_else(|| "-".into());
                    let state = match (r.exists, r.managed) {
                        (false, _) => "missing",
                        (true, true) => "ok",
                        (true, false) => "foreign",
                    };
                    println!(
                        "{:<32} {size:>10}  {state:<8} {}",
                        r.name,
                        r.target.as_deref().unwrap_or("-")
                    );
                }
            }
            Action::Rm { names, .. } => {
                let names = if names.is_empty() {
                    config.volumes.iter().map(|v| v.name.clone()).collect()
                } else {
                    names
                };
                let removed = volumes::remove(&engine, &names).await?;
                if json {
                    return super::print_json(&removed);
                }
                for name in removed {
                    println!("removed {name}");
                }
            }
        }
        anyhow::Ok(())
    })
}
