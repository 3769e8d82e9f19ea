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
        /// A commit (branch, tag, `origin/main`): its fingerprints, read from git's objects
        /// without a checkout.
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
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
        /// Also build this workspace's full image and tag it with its compose names.
        #[arg(long, conflicts_with = "rev")]
        full: bool,
        /// Build the dependency stages of this commit instead, from git's objects (no
        /// checkout): what the daemon does for a fetched default branch.
        #[arg(long, value_name = "REV")]
        rev: Option<String>,
        /// No progress display (the log file still gets everything).
        #[arg(long, short)]
        quiet: bool,
        /// auto, buildx or bollard (default: from the configuration).
        #[arg(long, value_parser = parse_backend)]
        backend: Option<Backend>,
        /// Push each dependency image the team registry lacks before returning, and fail if
        /// that fails (for CI; otherwise pushes run in the background).
        #[arg(long)]
        push: bool,
        #[arg(long)]
        json: bool,
    },
    /// The team registry dependency images are shared through ([registry] in dockwarm.toml).
    Registry {
        #[command(subcommand)]
        action: RegistryAction,
    },
    /// Set up this workspace: hooks, registration, volumes, background prebuild.
    Init {
        /// Print the setup and archive lines for Conductor instead.
        #[arg(long)]
        print_conductor: bool,
    },
    /// This workspace is going away: drop its image tags and registration, keep shared caches.
    Archive,
    /// The git hooks, kept beside any hooks already there.
    Hooks {
        #[command(subcommand)]
        action: HooksAction,
    },
    /// What the installed git hooks run; never fails the git command.
    Hook {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The shared cache volumes.
    Volumes {
        #[command(subcommand)]
        action: VolumesAction,
    },
    /// Check the engine, BuildKit, volumes and configuration, and advise on the Dockerfile.
    Doctor,
    /// The per-user watcher that keeps every registered workspace's prebuilds current.
    Daemon {
        #[command(subcommand)]
        action: DaemonAction,
    },
    /// Run the watcher in the foreground (what `daemon start` runs in the background).
    Watch,
    /// What is warm, building, queued, failed or cold, per workspace and image.
    Status {
        #[arg(long)]
        json: bool,
        /// Measure the shared volumes' sizes now (`/system/df`, slow while a build exports)
        /// instead of showing the last measurement.
        #[arg(long)]
        sizes: bool,
    },
    /// Build logs of this workspace's current builds: the dependency image and its own image.
    Logs {
        /// The image (default: all of this workspace's).
        image: Option<String>,
        /// Keep printing as the log grows, and follow newer builds.
        #[arg(short, long)]
        follow: bool,
    },
    /// Remove dockwarm's dependency images that no registered workspace needs.
    Prune {
        /// Unused images kept per image, newest first (default: [prune] keep).
        #[arg(long)]
        keep: Option<u32>,
        /// Only remove images older than this: 90s, 30m, 12h, 7d, 2w.
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<std::time::Duration>,
        /// Show what would go, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Every project's images, not only this checkout's project.
        #[arg(long)]
        all_projects: bool,
        /// Enforce the disk budget instead: remove the least recently used images until
        /// dockwarm's use is under SIZE (default: [prune] budget), as the daemon does.
        #[arg(long, value_name = "SIZE", num_args = 0..=1, default_missing_value = "")]
        budget: Option<String>,
        /// Print nothing unless something was removed or failed (the daemon's runs).
        #[arg(long)]
        quiet: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DaemonAction {
    /// Start it in the background (does nothing when one runs).
    Start,
    /// Stop it; a build in progress finishes on its own.
    Stop,
    /// Whether it runs, and what it is building.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RegistryAction {
    /// Reachable, authenticated, and how many fingerprints of this project it holds (exit 1
    /// when it is unreachable or refuses).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// What a prebuild starts in the background after building a dependency image.
    #[command(hide = true)]
    PushImage {
        #[arg(long)]
        to: String,
        #[arg(long)]
        plain_http: bool,
        #[arg(long)]
        project: String,
        #[arg(long)]
        image: String,
        #[arg(long)]
        fingerprint: String,
    },
}

#[derive(Subcommand)]
enum HooksAction {
    /// Install post-checkout, post-merge and post-rewrite, chaining hooks already there.
    Install,
    /// Put every hook back as it was before dockwarm.
    Uninstall,
    /// Which hooks are installed, and where (exit 1 when dockwarm's are missing).
    Status,
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

fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    dockwarm::prune::parse_age(s).map_err(|e| e.to_string())
}

/// `hook NAME ARGS...` exactly as the shims call it (all UTF-8, no options); anything else,
/// `dockwarm hook --help` included, goes through clap.
fn hook_args() -> Option<(String, Vec<String>)> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "hook" {
        return None;
    }
    let name = args.next()?.into_string().ok()?;
    if name.starts_with('-') {
        return None;
    }
    let rest = args
        .map(|a| a.into_string().ok())
        .collect::<Option<Vec<String>>>()?;
    Some((name, rest))
}

/// Whatever happens, the git command goes on: at most one line, exit 0.
fn hook(dir: &std::path::Path, name: &str, args: &[String]) -> ExitCode {
    commands::hook::arm_watchdog();
    // A bug must not print a backtrace into the user's git output either.
    std::panic::set_hook(Box::new(|_| {}));
    let line = std::panic::catch_unwind(|| commands::hook::run(dir, name, args)).unwrap_or_else(|_| {
        Some("dockwarm: internal error in the hook (please report it); the git command is unaffected".into())
    });
    if let Some(line) = line {
        eprintln!("{line}");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    // A bug must reach the user as one line, never a backtrace (the hook sets its own).
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("dockwarm: internal error{at} (please report it)");
    }));
    // The hooks run `dockwarm hook NAME ARGS...` on every checkout: answer them without
    // building clap's parser for the whole command line (a tenth of the hook's own work).
    if let Some((name, args)) = hook_args() {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        return hook(&dir, &name, &args);
    }
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
        Command::Fingerprint { images, rev, json } => {
            commands::fingerprint::run(&dir, &images, rev.as_deref(), json)
        }
        Command::Prebuild {
            images,
            background,
            full,
            rev,
            quiet,
            backend,
            push,
            json,
        } => commands::prebuild::run(
            &dir,
            commands::prebuild::Args {
                images,
                background,
                full,
                rev,
                quiet,
                backend,
                push,
                json,
            },
        ),
        Command::Registry { action } => match action {
            RegistryAction::Status { json } => match commands::team_registry::status(&dir, json) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            },
            RegistryAction::PushImage {
                to,
                plain_http,
                project,
                image,
                fingerprint,
            } => commands::team_registry::push_image(commands::team_registry::PushArgs {
                to,
                plain_http,
                project,
                image,
                fingerprint,
            }),
        },
        Command::Init {
            print_conductor: true,
        } => commands::init::print_conductor(&dir),
        Command::Init {
            print_conductor: false,
        } => commands::init::run(&dir),
        Command::Archive => commands::archive::run(&dir),
        Command::Hooks { action } => {
            let action = match action {
                HooksAction::Install => commands::hooks::Action::Install,
                HooksAction::Uninstall => commands::hooks::Action::Uninstall,
                HooksAction::Status => commands::hooks::Action::Status,
            };
            match commands::hooks::run(&dir, action) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            }
        }
        Command::Hook { name, args } => return hook(&dir, &name, &args),
        Command::Volumes { action } => {
            let (action, json) = match action {
                VolumesAction::Ensure { json } => (commands::volumes::Action::Ensure, json),
                VolumesAction::Ls { json } => (commands::volumes::Action::Ls, json),
                VolumesAction::Rm { names, json } => (commands::volumes::Action::Rm(names), json),
            };
            commands::volumes::run(&dir, action, json)
        }
        Command::Daemon { action } => commands::daemon::run(match action {
            DaemonAction::Start => commands::daemon::Action::Start,
            DaemonAction::Stop => commands::daemon::Action::Stop,
            DaemonAction::Status { json } => commands::daemon::Action::Status { json },
        }),
        Command::Watch => commands::daemon::watch(),
        Command::Status { json, sizes } => commands::status::run(&dir, json, sizes),
        Command::Logs { image, follow } => commands::logs::run(&dir, image.as_deref(), follow),
        Command::Prune {
            keep,
            older_than,
            dry_run,
            all_projects,
            budget,
            quiet,
            json,
        } => commands::prune::run(
            &dir,
            commands::prune::Args {
                keep,
                older_than,
                dry_run,
                all_projects,
                budget,
                quiet,
                json,
            },
        ),
        Command::Doctor => match commands::doctor::run(&dir) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dockwarm: {}", commands::one_line(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
