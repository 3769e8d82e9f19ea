//! The `dockwarm` command line: parses and dispatches; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dockwarm::commands;
use dockwarm::config::Backend;

#[derive(Parser)]
#[command(
    name = "dockwarm",
    version,
    about = "Keeps Docker builds warm across your git worktrees"
)]
struct Cli {
    /// Run as if started in this directory.
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The resolved configuration, with where each value came from.
    Config {
        #[arg(long)]
        json: bool,
    },
    /// Each image's dependency fingerprint and the inputs it covers.
    Fingerprint {
        /// Images to show (default: all).
        images: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Build the dependency stages now (progress shown), or hand them to the background.
    Prebuild {
        /// Images to build (default: all).
        images: Vec<String>,
        /// Start the build detached and return at once.
        #[arg(long)]
        background: bool,
        /// auto, buildx or bollard (default: from the configuration).
        #[arg(long, value_parser = parse_backend)]
        backend: Option<Backend>,
        #[arg(long)]
        json: bool,
    },
    /// The shared cache volumes.
    Volumes {
        #[command(subcommand)]
        action: VolumesAction,
    },
    /// Check the engine, BuildKit, volumes and configuration, and advise on the Dockerfile.
    Doctor,
}

#[derive(Subcommand)]
enum VolumesAction {
    /// Create the shared volumes that are missing.
    Ensure {
        #[arg(long)]
        json: bool,
    },
    /// List the shared volumes and their sizes.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Remove shared volumes (default: this project's); never one dockwarm did not create.
    Rm {
        names: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = match cli
        .dir
        .clone()
        .map(Ok)
        .unwrap_or_else(std::env::current_dir)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("dockwarm: cannot read the current directory: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Config { json } => commands::config::run(&dir, json),
        Command::Fingerprint { images, json } => commands::fingerprint::run(&dir, &images, json),
        Command::Prebuild {
            images,
            background,
            backend,
            json,
        } => commands::prebuild::run(
            &dir,
            commands::prebuild::Args {
                images,
                background,
                backend,
                json,
            },
        ),
        Command::Volumes { action } => {
            let (action, json) = match action {
                VolumesAction::Ensure { json } => (commands::volumes::Action::Ensure, json),
                VolumesAction::Ls { json } => (commands::volumes::Action::Ls, json),
                VolumesAction::Rm { names, json } => (commands::volumes::Action::Rm(names), json),
            };
            commands::volumes::run(&dir, action, json)
        }
        Command::Doctor => match commands::doctor::run(&dir) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dockwarm: {}", one_line(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}

/// The error and its causes on one line, without repeating a cause its parent already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out.replace('\n', " ")
}
