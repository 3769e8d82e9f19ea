//! The `dockwarm` command line: parses and dispatches; the work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dockwarm::commands;
use dockwarm::env::Env;

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
    Prebuild(commands::prebuild::Args),
    /// The team registry dependency images are shared through ([registry] in dockwarm.toml).
    Registry {
        #[command(subcommand)]
        action: commands::team_registry::Action,
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
        action: commands::hooks::Action,
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
        action: commands::volumes::Action,
    },
    /// Check the engine, BuildKit, volumes and configuration, and advise on the Dockerfile.
    Doctor,
    /// The per-user watcher that keeps every registered workspace's prebuilds current.
    Daemon {
        #[command(subcommand)]
        action: commands::daemon::Action,
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
    Prune(commands::prune::Args),
}

/// A command that has no "found something wrong" answer: done is success.
fn ran(result: anyhow::Result<()>) -> anyhow::Result<bool> {
    result.map(|()| true)
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
fn hook(env: &Env, dir: &std::path::Path, name: &str, args: &[String]) -> ExitCode {
    commands::hook::arm_watchdog(env);
    // A bug must not print a backtrace into the user's git output either.
    std::panic::set_hook(Box::new(|_| {}));
    let line = std::panic::catch_unwind(|| commands::hook::run(env, dir, name, args)).unwrap_or_else(|_| {
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
    // The one read of the environment: the library is handed it (the names dockwarm knows,
    // read now; the rest only if compose interpolation asks).
    let env = Env::from_process();
    // The hooks run `dockwarm hook NAME ARGS...` on every checkout: answer them without
    // building clap's parser for the whole command line (a tenth of the hook's own work).
    if let Some((name, args)) = hook_args() {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        return hook(&env, &dir, &name, &args);
    }
    commands::set_color(&env);
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
    // Ok(false): a check found something wrong and said so (exit 1).
    let env = &env;
    let result = match cli.command {
        Command::Config { json } => ran(commands::config::run(env, &dir, json)),
        Command::Fingerprint { images, rev, json } => ran(commands::fingerprint::run(
            env,
            &dir,
            &images,
            rev.as_deref(),
            json,
        )),
        Command::Prebuild(args) => ran(commands::prebuild::run(env, &dir, args)),
        Command::Registry { action } => commands::team_registry::run(env, &dir, action),
        Command::Init { print_conductor } => ran(match print_conductor {
            true => commands::init::print_conductor(&dir),
            false => commands::init::run(env, &dir),
        }),
        Command::Archive => ran(commands::archive::run(env, &dir)),
        Command::Hooks { action } => commands::hooks::run(env, &dir, action),
        Command::Hook { name, args } => return hook(env, &dir, &name, &args),
        Command::Volumes { action } => ran(commands::volumes::run(env, &dir, action)),
        Command::Daemon { action } => ran(commands::daemon::run(env, action)),
        Command::Watch => ran(commands::daemon::watch(env)),
        Command::Status { json, sizes } => ran(commands::status::run(env, &dir, json, sizes)),
        Command::Logs { image, follow } => {
            ran(commands::logs::run(env, &dir, image.as_deref(), follow))
        }
        Command::Prune(args) => ran(commands::prune::run(env, &dir, args)),
        Command::Doctor => commands::doctor::run(env, &dir),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dockwarm: {}", commands::one_line(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
