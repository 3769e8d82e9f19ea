//! `dockwarm fingerprint [--rev REV] [--json]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::fingerprint::{BaseImage, InputFile};
use crate::plan::WorkspacePlan;
use crate::prebuild;
use crate::state::State;
use crate::workspace::Workspace;

/// The stable `--json` shape: one object per image.
#[derive(Serialize)]
struct Row {
    /// With `--rev`: the commit the fingerprint is of.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    image: String,
    fingerprint: String,
    tag: String,
    built: bool,
    dependency_stage: String,
    build_target: Option<String>,
    truncated: bool,
    bases: Vec<BaseImage>,
    args: BTreeMap<String, String>,
    inputs: Vec<InputFile>,
}

/// `rev`: the fingerprints of that commit, read from git's objects instead of the checkout.
pub fn run(
    env: &crate::env::Env,
    dir: &Path,
    images: &[String],
    rev: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let ws = Workspace::discover(dir)?;
    let state = State::open(env)?;
    let rt = super::runtime()?;
    let rows = rt.block_on(async {
        let engine = super::connect(&state).await?;
        let at = match rev {
            Some(rev) => Some(crate::ahead::plan_at(
                &state,
                &ws,
                rev,
                engine.ignore_dialect(),
            )?),
            None => None,
        };
        let at_checkout;
        let (plan, commit) = match &at {
            Some(at) => (&at.plan, Some(at.commit.clone())),
            None => {
                at_checkout = WorkspacePlan::load(&state, &ws, engine.ignore_dialect())?;
                (&at_checkout, None)
            }
        };
        let config = &plan.config;
        let mut rows = Vec::new();
        for image in config.select(images)? {
            let image_plan = plan
                .image(&image.name)
                .ok_or_else(|| anyhow::anyhow!("image `{}` has no plan", image.name))?;
            let fp = prebuild::fingerprint_image(&engine, image_plan)
                .await
                .map_err(|e| match (e, &at) {
                    // A commit's files are named `<commit>:path`, not by the scratch copy.
                    (prebuild::PrebuildError::Plan { message, usage }, Some(at)) => {
                        prebuild::PrebuildError::Plan {
                            message: at.relabel(&message),
                            usage,
                        }
                    }
                    (e, _) => e,
                })?;
            let tag = fp.tag(&config.project.value);
            rows.push(Row {
                commit: commit.clone(),
                image: image.name.clone(),
                built: prebuild::built_image(&engine, &tag, &fp.hex).await?,
                fingerprint: fp.hex.clone(),
                tag,
                dependency_stage: fp.plan.deps.description.clone(),
                build_target: fp.plan.deps.build_target.clone(),
                truncated: fp.plan.deps.truncated,
                bases: fp.bases.clone(),
                args: fp.plan.args.clone(),
                inputs: fp.plan.inputs.clone(),
            });
        }
        anyhow::Ok(rows)
    })?;
    if json {
        return super::print_json(&rows);
    }
    for r in rows {
        let state = if r.built {
            super::paint("built", "32")
        } else {
            super::paint("not built", "33")
        };
        println!("{}  {}  {} ({state})", r.image, r.fingerprint, r.tag);
        if let Some(c) = &r.commit {
            println!("  commit {c}");
        }
        println!("  dependency stage  {}", r.dependency_stage);
        for b in &r.bases {
            println!(
                "  base   {}  {}",
                b.reference,
                b.id.as_deref().unwrap_or("(not present locally)")
            );
        }
        for (k, v) in &r.args {
            println!("  arg    {k}={v}");
        }
        for i in &r.inputs {
            println!(
                "  input  {}  {} bytes  sha256:{}",
                i.path,
                i.size,
                &i.sha256[..16]
            );
        }
    }
    Ok(())
}
