//! `dockwarm registry status` and the background push (`dockwarm registry push-image`, what
//! a prebuild starts detached after building a dependency image).

use std::path::Path;

use serde::Serialize;

use crate::plan::{self, WorkspacePlan};
use crate::remote::{self, Access, Team, TeamRegistry};
use crate::state::State;
use crate::workspace::Workspace;

/// What `registry status --json` prints.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    /// The registry (`host/path`), None when none is configured.
    pub registry: Option<String>,
    /// Where the setting came from.
    pub from: Option<String>,
    pub plain_http: bool,
    pub reachable: bool,
    /// `anonymous` or `authenticated`, once it answered and let us in.
    pub access: Option<Access>,
    /// Who docker's credentials say we are (never the secret).
    pub identity: Option<String>,
    /// Why it is unreachable or refuses, in one line.
    pub error: Option<String>,
    pub images: Vec<ImageHeld>,
    /// The last thing that happened with it on this machine.
    pub last_event: Option<remote::Event>,
}

#[derive(Debug, Serialize)]
pub struct ImageHeld {
    pub image: String,
    pub repository: String,
    /// How many fingerprints of this image the registry holds.
    pub fingerprints: usize,
    /// This checkout's fingerprint now (when the engine answered), and whether it is held.
    pub current: Option<String>,
    pub current_held: Option<bool>,
}

/// `dockwarm registry status [--json]`: exit 1 when a configured registry is unreachable or
/// refuses us.
pub fn status(dir: &Path, json: bool) -> anyhow::Result<bool> {
    let ws = Workspace::discover(dir)?;
    let state = State::open()?;
    let plan = WorkspacePlan::load(&state, &ws, plan::remembered_dialect(&state))?;
    let config = &plan.config;
    let project = config.project.value.clone();
    let mut report = StatusReport {
        registry: None,
        from: None,
        plain_http: false,
        reachable: false,
        access: None,
        identity: None,
        error: None,
        images: Vec::new(),
        last_event: remote::last_event(&state, &project),
    };
    let Some(team) = &config.registry else {
        if json {
            super::print_json(&report)?;
        } else {
            println!("no team registry configured: add [registry] url = \"HOST/PATH\" to dockwarm.toml or set DOCKWARM_REGISTRY");
        }
        return Ok(true);
    };
    report.registry = Some(team.value.to_string());
    report.from = Some(team.from.clone());
    report.plain_http = team.value.plain_http;
    let rt = super::runtime()?;
    rt.block_on(async {
        let client = match Team::new(&team.value) {
            Ok(c) => c,
            Err(e) => {
                report.error = Some(e.to_string());
                return;
            }
        };
        report.identity = client.identity();
        match client.check().await {
            Ok(access) => {
                report.reachable = true;
                report.access = Some(access);
            }
            Err(e) => {
                report.reachable = matches!(e, remote::RemoteError::Unauthorized { .. });
                report.error = Some(e.to_string());
                return;
            }
        }
        let engine = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::engine::Engine::connect(),
        )
        .await
        .ok()
        .and_then(Result::ok);
        for image in &config.images {
            let held = match client.fingerprints(&project, &image.name).await {
                Ok(h) => h,
                Err(e) => {
                    report.error = Some(e.to_string());
                    return;
                }
            };
            let mut current = None;
            if let (Some(engine), Some(image_plan)) = (&engine, plan.image(&image.name)) {
                if let Ok(fp) = crate::prebuild::fingerprint_image(engine, image_plan).await {
                    current = Some(fp.hex);
                }
            }
            report.images.push(ImageHeld {
                image: image.name.clone(),
                repository: format!(
                    "{}/{}",
                    team.value.host,
                    team.value.repository(&project, &image.name)
                ),
                fingerprints: held.len(),
                current_held: current.as_ref().map(|c| held.contains(c)),
                current,
            });
        }
    });
    let ok = report.error.is_none();
    if json {
        super::print_json(&report)?;
        return Ok(ok);
    }
    let plain = if report.plain_http {
        ", plain HTTP"
    } else {
        ""
    };
    println!("team registry {} ({}{plain})", team.value, team.from);
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

/// What a background push needs, from the prebuild that built the image.
pub struct PushArgs {
    pub to: String,
    pub plain_http: bool,
    pub project: String,
    pub image: String,
    pub fingerprint: String,
}

/// Pushes one fingerprint's dependency image unless the registry holds it; records the
/// outcome for `status` and prints it (into the push log when run in the background).
pub fn push_image(args: PushArgs) -> anyhow::Result<()> {
    let state = State::open()?;
    let insecure: Vec<String> = if args.plain_http {
        vec![args.to.split('/').next().unwrap_or_default().to_string()]
    } else {
        Vec::new()
    };
    let registry = TeamRegistry::parse(&args.to, &insecure).map_err(anyhow::Error::msg)?;
    // Two prebuilds of one fingerprint push once.
    let Some(_guard) = state.try_lock(&format!("push-{}", args.fingerprint))? else {
        return Ok(());
    };
    let local_tag = format!(
        "{}:{}",
        crate::fingerprint::repository(&args.project, &args.image),
        &args.fingerprint[..12.min(args.fingerprint.len())]
    );
    let rt = super::runtime()?;
    let result = rt.block_on(async {
        let engine = crate::engine::Engine::connect().await?;
        remote::push_missing(
            &engine,
            &registry,
            &args.project,
            &args.image,
            &args.fingerprint,
            &local_tag,
        )
        .await
        .map_err(anyhow::Error::from)
    });
    match result {
        Ok(line) => {
            remote::record_event(&state, &args.project, true, &line);
            println!("dockwarm: {}: {line}", args.image);
            Ok(())
        }
        Err(e) => {
            let line = super::one_line(&e);
            remote::record_event(&state, &args.project, false, &line);
            Err(e)
        }
    }
}
