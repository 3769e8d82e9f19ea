//! Whether compose mounts the shared volumes as shared: a top-level volume without `name:`
//! becomes `<compose project>_<key>`, one copy per workspace, which silently undoes what
//! `[volumes]` is for. Pure over the compose model and the engine's volume list, so the
//! advice is unit-tested without an engine.

use std::path::Path;

use super::{Check, Finding, Language};
use crate::compose;
use crate::config::{Config, VolumeSpec};
use crate::engine::Engine;

/// A volume on the engine, as `doctor` needs it: its name and compose's labels.
#[derive(Debug, Clone)]
pub(super) struct EngineVolume {
    pub(super) name: String,
    pub(super) compose_project: Option<String>,
    pub(super) compose_key: Option<String>,
}

/// Every volume on the engine (None when it does not answer within 5 s).
pub(super) async fn engine_volumes(engine: &Engine) -> Option<Vec<EngineVolume>> {
    let listed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        engine
            .docker
            .list_volumes(None::<bollard::query_parameters::ListVolumesOptions>),
    )
    .await
    .ok()?
    .ok()?;
    Some(
        listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| EngineVolume {
                compose_project: v.labels.get("com.docker.compose.project").cloned(),
                compose_key: v.labels.get("com.docker.compose.volume").cloned(),
                name: v.name,
            })
            .collect(),
    )
}

/// The parts of the configuration the sharing check reads.
pub(super) struct Sharing<'a> {
    /// The compose file the YAML goes into.
    pub(super) compose_file: &'a Path,
    /// This checkout's compose project (what compose prefixes unnamed volumes with).
    pub(super) compose_project: &'a str,
    /// dockwarm's project, whose name a shared volume carries.
    pub(super) project: &'a str,
    /// compose's top-level volumes.
    pub(super) compose_volumes: &'a [compose::Volume],
    /// dockwarm's shared volumes.
    pub(super) volumes: &'a [VolumeSpec],
}

impl<'a> Sharing<'a> {
    /// None without a compose file: nothing mounts volumes then.
    pub(super) fn of(c: &'a Config) -> Option<Sharing<'a>> {
        Some(Sharing {
            compose_file: c.compose_file.as_deref()?,
            compose_project: &c.compose_project.value,
            project: &c.project.value,
            compose_volumes: &c.compose_volumes,
            volumes: &c.volumes,
        })
    }

    /// A shared volume only stays shared if compose mounts it by a fixed name: a top-level key
    /// without `name:` becomes `<compose project>_<key>`, one copy per workspace. Checked
    /// against dockwarm's `[volumes]` (by the full name compose will use), and against the
    /// engine (`on_engine`, None when it did not answer): a volume of the bare name that
    /// compose will not mount, or copies of a cache volume in several workspaces (the seed's
    /// regression).
    pub(super) fn check(&self, on_engine: Option<&[EngineVolume]>) -> Vec<Finding> {
        let path = self.compose_file;
        let cp = self.compose_project;
        let mut out = Vec::new();
        let mut fine = 0;
        for t in self.compose_volumes {
            let here = t.engine_name(cp);
            let configured = self.volumes.iter().find(|v| {
                v.key == t.key
                    || v.name == t.key
                    || v.name == here
                    || v.target.as_ref().is_some_and(|x| t.targets.contains(x))
            });
            if let Some(fixed) = &t.name {
                match configured {
                    Some(v) if *fixed != v.name => out.push(
                        Finding::warn(
                            Check::VolumesShared,
                            format!(
                                "{} volumes.{} mounts `{fixed}`, but dockwarm's shared volume is `{}` ({})",
                                path.display(),
                                t.key,
                                v.name,
                                v.from
                            ),
                        )
                        .fix_with(fixed_name_advice(path), Language::Yaml, fixed_name_yaml(&t.key, &v.name)),
                    ),
                    _ => fine += 1,
                }
                continue;
            }
            let mounted = if t.targets.is_empty() {
                String::new()
            } else {
                format!(" (mounted at {})", t.targets.join(", "))
            };
            if let Some(v) = configured {
                let coincidence = if here == v.name {
                    format!(
                        " (the same name only in this checkout, whose compose project is `{cp}`; every other worktree gets its own)"
                    )
                } else {
                    String::new()
                };
                out.push(
                    Finding::fail(
                        Check::VolumesShared,
                        format!(
                            "{} volumes.{}{mounted} has no `name:`, so compose names it `<compose project>_{}`, one per workspace (`{here}` here){coincidence}, instead of dockwarm's shared `{}` ({})",
                            path.display(),
                            t.key,
                            t.key,
                            v.name,
                            v.from
                        ),
                    )
                    .fix_with(fixed_name_advice(path), Language::Yaml, fixed_name_yaml(&t.key, &v.name)),
                );
                continue;
            }
            let Some(on_engine) = on_engine else {
                fine += 1;
                continue;
            };
            if on_engine.iter().any(|e| e.name == t.key) {
                out.push(
                    Finding::fail(
                        Check::VolumesShared,
                        format!(
                            "{} volumes.{}{mounted} has no `name:`, so compose mounts `{here}` in this workspace (one per workspace), not the volume `{}` that exists on the engine",
                            path.display(),
                            t.key,
                            t.key
                        ),
                    )
                    .fix_with(fixed_name_advice(path), Language::Yaml, fixed_name_yaml(&t.key, &t.key)),
                );
                continue;
            }
            let cache: Vec<&String> = t.targets.iter().filter(|x| is_cache_path(x)).collect();
            let mut copies: Vec<&str> = on_engine
                .iter()
                .filter(|e| {
                    e.compose_key.as_deref() == Some(t.key.as_str())
                        && e.compose_project
                            .as_ref()
                            .is_some_and(|p| e.name == format!("{p}_{}", t.key))
                })
                .map(|e| e.name.as_str())
                .collect();
            copies.sort();
            if !cache.is_empty() && copies.len() >= 2 {
                let shared = format!("{}_{}", self.project, t.key);
                let targets: Vec<&str> = cache.iter().map(|s| s.as_str()).collect();
                out.push(
                    Finding::fail(
                        Check::VolumesShared,
                        format!(
                            "{} volumes.{} is a cache (mounted at {}) with no `name:`: compose made a copy per workspace ({}), so each workspace fills its own",
                            path.display(),
                            t.key,
                            targets.join(", "),
                            copies.join(", ")
                        ),
                    )
                    .fix_with(
                        format!(
                            "in dockwarm.toml, add `[volumes]` `{} = \"{}\"` (`dockwarm init` creates `{shared}`), and {}",
                            t.key,
                            targets[0],
                            fixed_name_advice(path)
                        ),
                        Language::Yaml,
                        fixed_name_yaml(&t.key, &shared),
                    ),
                );
                continue;
            }
            fine += 1;
        }
        if fine > 0 && !self.compose_volumes.is_empty() {
            out.push(Finding::ok(
                Check::VolumesShared,
                format!(
                    "{fine} compose volume(s) mounted as intended{}",
                    if on_engine.is_none() {
                        " (the engine's volumes not checked)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        out
    }
}

/// Whether a mount target is a package or build cache (what a shared volume is for), as
/// opposed to data each workspace should keep to itself (a database's files).
fn is_cache_path(target: &str) -> bool {
    let t = target.to_ascii_lowercase();
    t.contains("cache")
        || [
            ".npm",
            ".m2",
            ".gradle",
            "/go/pkg/mod",
            ".pnpm-store",
            ".cargo/registry",
            ".yarn",
        ]
        .iter()
        .any(|suffix| t.trim_end_matches('/').ends_with(suffix))
}

/// What to do with [`fixed_name_yaml`]'s lines.
fn fixed_name_advice(compose_file: &Path) -> String {
    format!(
        "in {}, give the volume its shared name (compose then mounts that volume in every workspace):",
        compose_file.display()
    )
}

/// The compose YAML that gives top-level volume `key` the fixed name `name`.
fn fixed_name_yaml(key: &str, name: &str) -> String {
    format!("volumes:\n  {key}:\n    name: {name}\n    external: true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;
    use crate::doctor::Level;

    fn compose_volume(key: &str, name: Option<&str>, targets: &[&str]) -> compose::Volume {
        compose::Volume {
            key: key.into(),
            name: name.map(Into::into),
            external: name.is_some(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn shared(key: &str, name: &str) -> VolumeSpec {
        VolumeSpec {
            key: key.into(),
            name: name.into(),
            target: None,
            from: Origin::Toml(format!("[volumes] {key}")),
        }
    }

    fn sharing<'a>(
        compose_volumes: &'a [compose::Volume],
        volumes: &'a [VolumeSpec],
    ) -> Sharing<'a> {
        Sharing {
            compose_file: Path::new("/src/shop/compose.yaml"),
            compose_project: "shop-feature",
            project: "shop",
            compose_volumes,
            volumes,
        }
    }

    fn engine_volume(name: &str, project: Option<&str>, key: Option<&str>) -> EngineVolume {
        EngineVolume {
            name: name.into(),
            compose_project: project.map(Into::into),
            compose_key: key.map(Into::into),
        }
    }

    #[test]
    fn a_configured_volume_without_a_name_fails_with_the_yaml_that_fixes_it() {
        let cv = [compose_volume("uv", None, &["/cache/uv"])];
        let vs = [shared("uv", "shop_uv")];
        let found = sharing(&cv, &vs).check(None);
        assert_eq!(found.len(), 1, "{found:?}");
        let f = &found[0];
        assert_eq!((f.check, f.level), (Check::VolumesShared, Level::Fail));
        assert!(
            f.detail
                .contains("one per workspace (`shop-feature_uv` here)"),
            "{f:?}"
        );
        assert!(
            f.detail
                .ends_with("instead of dockwarm's shared `shop_uv` (dockwarm.toml [volumes] uv)"),
            "{f:?}"
        );
        let fix = f.fix.as_ref().unwrap();
        assert_eq!(
            fix.advice,
            "in /src/shop/compose.yaml, give the volume its shared name (compose then mounts that volume in every workspace):"
        );
        let snippet = fix.snippet.as_ref().unwrap();
        assert_eq!(snippet.language, Language::Yaml);
        assert_eq!(
            snippet.text,
            "volumes:\n  uv:\n    name: shop_uv\n    external: true"
        );
    }

    #[test]
    fn a_fixed_name_that_matches_is_fine_and_one_that_differs_warns() {
        let vs = [shared("uv", "shop_uv")];
        let good = [compose_volume("uv", Some("shop_uv"), &["/cache/uv"])];
        let found = sharing(&good, &vs).check(None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].level, Level::Ok);
        assert_eq!(
            found[0].detail,
            "1 compose volume(s) mounted as intended (the engine's volumes not checked)"
        );
        let bad = [compose_volume("uv", Some("uv-cache"), &["/cache/uv"])];
        let found = sharing(&bad, &vs).check(Some(&[]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].level, Level::Warn);
        assert!(found[0]
            .detail
            .contains("mounts `uv-cache`, but dockwarm's shared volume is `shop_uv`"));
    }

    #[test]
    fn a_bare_named_volume_on_the_engine_is_not_what_compose_mounts() {
        let cv = [compose_volume(
            "pgdata",
            None,
            &["/var/lib/postgresql/data"],
        )];
        let on_engine = [engine_volume("pgdata", None, None)];
        let found = sharing(&cv, &[]).check(Some(&on_engine));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].level, Level::Fail);
        assert!(found[0]
            .detail
            .contains("compose mounts `shop-feature_pgdata`"));
        assert_eq!(
            found[0]
                .fix
                .as_ref()
                .unwrap()
                .snippet
                .as_ref()
                .unwrap()
                .text,
            "volumes:\n  pgdata:\n    name: pgdata\n    external: true"
        );
    }

    #[test]
    fn a_cache_copied_per_workspace_fails_but_data_copies_do_not() {
        let on_engine = [
            engine_volume("shop-a_npm", Some("shop-a"), Some("npm")),
            engine_volume("shop-b_npm", Some("shop-b"), Some("npm")),
            engine_volume("shop-a_db", Some("shop-a"), Some("db")),
            engine_volume("shop-b_db", Some("shop-b"), Some("db")),
        ];
        let cv = [
            compose_volume("npm", None, &["/root/.npm"]),
            compose_volume("db", None, &["/var/lib/mysql"]),
        ];
        let found = sharing(&cv, &[]).check(Some(&on_engine));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].level, Level::Fail);
        assert!(found[0]
            .detail
            .contains("compose made a copy per workspace (shop-a_npm, shop-b_npm)"));
        let fix = found[0].fix.as_ref().unwrap();
        assert!(fix.advice.starts_with(
            "in dockwarm.toml, add `[volumes]` `npm = \"/root/.npm\"` (`dockwarm init` creates `shop_npm`), and in /src/shop/compose.yaml, "
        ));
        assert!(fix
            .snippet
            .as_ref()
            .unwrap()
            .text
            .contains("name: shop_npm"));
        // The database keeps one copy per workspace, as it should.
        assert_eq!(found[1].level, Level::Ok);
        assert_eq!(found[1].detail, "1 compose volume(s) mounted as intended");
    }

    #[test]
    fn cache_paths_are_told_from_data() {
        for cache in [
            "/root/.cache/uv",
            "/root/.npm/",
            "/go/pkg/mod",
            "/usr/local/cargo/.cargo/registry",
        ] {
            assert!(is_cache_path(cache), "{cache}");
        }
        for data in ["/var/lib/postgresql/data", "/app/node_modules", "/data"] {
            assert!(!is_cache_path(data), "{data}");
        }
    }
}
