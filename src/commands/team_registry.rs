//! `dockwarm registry status` and the background push (`dockwarm registry push-image`, what
//! a prebuild starts detached after building a dependency image).

use std::path::Path;

use crate::plan::{self, WorkspacePlan};
use crate::remote::{self, Access, TeamRegistry};
use crate::state::State;
use crate::workspace::Workspace;

/// `dockwarm registry status [--json]`: false (exit 1) when a configured registry is
/// unreachable or refuses us.
pub fn status(env: &crate::env::Env, dir: &Path, json: bool) -> anyhow::Result<bool> {
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    let plan = WorkspacePlan::load(&state, &ws, plan::remembered_dialect(&state))?;
    let report = super::runtime()?.block_on(remote::status::collect(&state, &plan));
    let ok = report.error.is_none();
    if json {
        super::print_json(&report)?;
        return Ok(ok);
    }
    let (Some(registry), Some(from)) = (&report.registry, &report.from) else {
        println!("no team registry configured: add [registry] url = \"HOST/PATH\" to dockwarm.toml or set DOCKWARM_REGISTRY");
        return Ok(true);
    };
    let plain = if report.plain_http {
        ", plain HTTP allowed"
    } else {
        ""
    };
    println!("team registry {registry} ({from}{plain})");
    println!("reachable: {}", if report.reachable { "yes" } else { "no" });
    match (&report.access, &report.identity) {
        (Some(Access::Authenticated), Some(who)) => println!("authenticated: yes, as {who}"),
        (Some(Access::Authenticated), None) => println!("authenticated: yes"),
        (Some(Access::Anonymous), _) => println!("authenticated: not needed (open registry)"),
        (None, _) => {}
    }
    if let Some(e) = &report.error {
        println!("{}", super::paint(&format!("error: {e}"), "31"));
    }
    for i in &report.images {
        let current = match (&i.current, i.current_held) {
            (Some(fp), Some(true)) => format!("; this checkout's {} is there", &fp[..12]),
            (Some(fp), _) => format!("; this checkout's {} is not", &fp[..12]),
            _ => String::new(),
        };
        println!(
            "{}: {} fingerprint(s) held in {}{current}",
            i.image, i.fingerprints, i.repository
        );
    }
    if let Some(e) = &report.last_event {
        println!("last: {} ({} ago)", e.line, crate::state::ago(e.at));
    }
    Ok(ok)
}

/// What `dockwarm registry` was asked to do: clap's subcommand, parsed in main.rs. The variant
/// docs are the help text.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Reachable, authenticated, and how many fingerprints of this project it holds (exit 1
    /// when it is unreachable or refuses).
    Status {
        /// The answer as one JSON object.
        // No help line, as before: `help = None` keeps `--json` bare in `--help`.
        #[arg(long, help = None)]
        json: bool,
    },
    /// What a prebuild starts in the background after building a dependency image.
    #[command(hide = true)]
    PushImage(PushArgs),
}

/// Runs `dockwarm registry ACTION` for the checkout holding `dir`; false (exit 1) when
/// `status` finds the registry unreachable or refusing.
pub fn run(env: &crate::env::Env, dir: &Path, action: Action) -> anyhow::Result<bool> {
    match action {
        Action::Status { json } => status(env, dir, json),
        Action::PushImage(args) => push_image(env, args).map(|()| true),
    }
}

/// What a background push needs, from the prebuild that built the image. No help text: only
/// dockwarm itself runs `registry push-image`.
#[derive(clap::Args)]
pub struct PushArgs {
    /// The team registry as `HOST/PATH`, passed on the command line because the child does
    /// not resolve the configuration again.
    #[arg(long, help = None)]
    pub to: String,
    /// Whether that registry's host may be spoken to in plain HTTP (the parent's `insecure`
    /// list said so).
    #[arg(long, help = None)]
    pub plain_http: bool,
    /// The project the dependency image belongs to (names its repository and its tag).
    #[arg(long, help = None)]
    pub project: String,
    /// The configured image whose dependency image is pushed.
    #[arg(long, help = None)]
    pub image: String,
    /// The full fingerprint: which dependency image, and the tag it gets in the registry.
    #[arg(long, help = None)]
    pub fingerprint: String,
}

/// Pushes one fingerprint's dependency image unless the registry holds it; prints what
/// happened (into the push log when run in the background).
pub fn push_image(env: &crate::env::Env, args: PushArgs) -> anyhow::Result<()> {
    let state = State::open(env)?;
    let host = args.to.split('/').next().unwrap_or_default().to_string();
    let insecure = if args.plain_http {
        vec![host]
    } else {
        Vec::new()
    };
    let registry = TeamRegistry::parse(&args.to, &insecure).map_err(anyhow::Error::msg)?;
    let line = super::runtime()?.block_on(async {
        let engine = crate::engine::Engine::connect(env).await?;
        let pushed = remote::push_recorded(
            &state,
            &engine,
            &registry,
            &args.project,
            &args.image,
            &args.fingerprint,
        )
        .await?;
        anyhow::Ok(pushed)
    })?;
    if let Some(line) = line {
        println!("dockwarm: {}: {line}", args.image);
    }
    Ok(())
}
