//! `dockwarm hooks install|uninstall|status`.

use std::path::Path;

use crate::hooks::{self, InstallAction, UninstallAction};
use crate::workspace::Workspace;

/// What `dockwarm hooks` was asked to do: clap's subcommand, parsed in main.rs. The variant
/// docs are the help text.
#[derive(clap::Subcommand)]
pub enum Action {
    /// Install post-checkout, post-merge and post-rewrite, chaining hooks already there.
    Install,
    /// Put every hook back as it was before dockwarm.
    Uninstall,
    /// Which hooks are installed, and where (exit 1 when dockwarm's are missing).
    Status,
}

/// Runs `dockwarm hooks ACTION` in the checkout holding `dir` and prints what it did. Returns
/// false when `status` finds dockwarm's hooks missing, so main exits 1 for scripts to see.
pub fn run(env: &crate::env::Env, dir: &Path, action: Action) -> anyhow::Result<bool> {
    let ws = Workspace::discover(dir)?;
    match action {
        Action::Install => {
            let report = hooks::install(&ws.root, &std::env::current_exe()?, refs_hook(env, &ws))?;
            println!("hooks in {}", report.location);
            for (name, what) in &report.hooks {
                println!("  {name}: {}", describe_install(what));
            }
        }
        Action::Uninstall => {
            let report = hooks::uninstall(&ws.root)?;
            println!("hooks in {}", report.location);
            if report.changed.is_empty() {
                println!("  nothing of dockwarm's was installed");
            }
            for (path, what) in &report.changed {
                let what = match what {
                    UninstallAction::Restored { from } => {
                        format!("restored from {}", from.display())
                    }
                    UninstallAction::Removed => "removed".into(),
                    UninstallAction::BlockRemoved => "dockwarm block removed".into(),
                    UninstallAction::FileRemoved => "removed (dockwarm had created it)".into(),
                };
                println!("  {}: {what}", path.display());
            }
        }
        Action::Status => {
            let status = hooks::status(&ws.root, refs_hook(env, &ws))?;
            println!("hooks in {}", status.location);
            for h in &status.hooks {
                println!("  {}: {}", h.name, h.state);
            }
            return Ok(status.installed());
        }
    }
    Ok(true)
}

/// How `hooks install` words what it did to one hook: installed, chained (and where the old hook
/// went), updated, unchanged, or routed through a hook manager.
pub fn describe_install(what: &InstallAction) -> String {
    match what {
        InstallAction::Created => "installed".into(),
        InstallAction::Chained { orig } => format!(
            "installed, chaining the existing hook (kept as {})",
            orig.display()
        ),
        InstallAction::Updated => "updated".into(),
        InstallAction::Unchanged => "already installed".into(),
        InstallAction::Via { manager, .. } => format!("runs through {}'s hook", manager.name()),
        InstallAction::HuskyBlock { file, created } => {
            format!(
                "{} {}",
                if *created {
                    "created"
                } else {
                    "added a block to"
                },
                file.display()
            )
        }
    }
}

/// `[ahead] hook`, or off when the configuration cannot be read (the other hooks are still
/// installed: they report the broken configuration on the next checkout).
fn refs_hook(env: &crate::env::Env, ws: &Workspace) -> bool {
    crate::config::resolve(ws, env).is_ok_and(|c| c.ahead.hook.value)
}
