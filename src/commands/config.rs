//! `dockwarm config [--json]`.

use std::path::Path;

use crate::config::{self, Sourced};

/// Prints the resolved configuration of the checkout containing `dir`, each value beside
/// where it came from (or all of it as JSON), so "why is it building *that*?" has an answer.
pub fn run(env: &crate::env::Env, dir: &Path, json: bool) -> anyhow::Result<()> {
    let c = config::load(dir, env)?;
    if json {
        return super::print_json(&c);
    }
    let from = |s: &dyn std::fmt::Display| super::paint(&format!("({s})"), "2");
    let show =
        |label: &str, v: &Sourced<String>| println!("{label:<16}{:<28} {}", v.value, from(&v.from));
    println!("{:<16}{}", "workspace", c.root.display());
    println!(
        "{:<16}{}",
        "config file",
        c.file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none: derived)".into())
    );
    if c.compose_files.is_empty() {
        println!("{:<16}(none)", "compose file");
    }
    for f in &c.compose_files {
        let reader = c.compose_reader.map(|r| r.describe()).unwrap_or_default();
        println!(
            "{:<16}{:<28} {}",
            "compose file",
            f.display(),
            from(&reader)
        );
    }
    show("project", &c.project);
    show("compose project", &c.compose_project);
    println!(
        "{:<16}{:<28} {}",
        "backend",
        format!("{:?}", c.backend.value).to_lowercase(),
        from(&c.backend.from)
    );
    println!(
        "{:<16}{:<28} {}",
        "watch debounce",
        format!("{} ms", c.debounce_ms.value),
        from(&c.debounce_ms.from)
    );
    println!(
        "{:<16}{:<28} {}",
        "ahead",
        if c.ahead.enabled.value {
            "enabled"
        } else {
            "disabled"
        },
        from(&c.ahead.enabled.from)
    );
    if !c.ahead.refs.value.is_empty() {
        println!(
            "{:<16}{:<28} {}",
            "ahead refs",
            c.ahead.refs.value.join(", "),
            from(&c.ahead.refs.from)
        );
    }
    println!(
        "{:<16}{:<28} {}",
        "prune keep",
        c.prune_keep.value,
        from(&c.prune_keep.from)
    );
    println!(
        "{:<16}{:<28} {}",
        "prune budget",
        crate::disk::human(c.prune_budget.value),
        from(&c.prune_budget.from)
    );
    println!(
        "{:<16}{:<28} {}",
        "builder budget",
        c.builder_budget
            .value
            .map(crate::disk::human)
            .unwrap_or_else(|| "(never pruned)".into()),
        from(&c.builder_budget.from)
    );
    match &c.registry {
        Some(r) => println!(
            "{:<16}{:<28} {}",
            "team registry",
            format!(
                "{}{}",
                r.value,
                if r.value.plain_http {
                    " (plain HTTP allowed)"
                } else {
                    ""
                }
            ),
            from(&r.from)
        ),
        None => println!("{:<16}(none: this machine only)", "team registry"),
    }
    if c.volumes.is_empty() {
        println!("volumes         (none)");
    }
    for v in &c.volumes {
        let target = v
            .target
            .as_deref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        println!(
            "{:<16}{:<28} {}",
            "volume",
            format!("{}{target}", v.name),
            from(&v.from)
        );
    }
    for i in &c.images {
        println!("image {:<10}{:<28} {}", i.name, "", from(&i.from));
        let row = |k: &str, v: String, f: &dyn std::fmt::Display| {
            println!("  {k:<14}{v:<28} {}", from(f))
        };
        row("context", display_path(&i.context.value), &i.context.from);
        match &i.dockerfile_inline {
            Some(inline) => row(
                "dockerfile",
                format!("(inline, {} lines)", inline.value.lines().count()),
                &inline.from,
            ),
            None => row(
                "dockerfile",
                display_path(&i.dockerfile.value),
                &i.dockerfile.from,
            ),
        }
        for (k, v) in &i.additional_contexts {
            row(
                "context",
                format!("{k}={}", display_path(&v.value)),
                &v.from,
            );
        }
        row(
            "target",
            i.target
                .value
                .clone()
                .unwrap_or_else(|| "(last stage)".into()),
            &i.target.from,
        );
        row(
            "network",
            i.network
                .value
                .clone()
                .unwrap_or_else(|| "(the builder's default)".into()),
            &i.network.from,
        );
        row(
            "deps_target",
            i.deps_target
                .value
                .clone()
                .unwrap_or_else(|| "(derived)".into()),
            &i.deps_target.from,
        );
        for (k, v) in &i.args {
            row("arg", format!("{k}={}", v.value), &v.from);
        }
        if !i.inputs.value.is_empty() {
            row("inputs", i.inputs.value.join(", "), &i.inputs.from);
        }
        row("services", i.services.value.join(", "), &i.services.from);
    }
    for s in &c.skipped {
        println!(
            "{:<16}{:<28} {}",
            "not prebuilt",
            s.service,
            from(&s.reason)
        );
    }
    Ok(())
}

fn display_path(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".into()
    } else {
        p.display().to_string()
    }
}
