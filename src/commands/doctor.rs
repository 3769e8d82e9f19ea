//! `dockwarm doctor`: one line per check, each failure with its fix. The checks and their
//! advice are the library's ([`crate::doctor`]); this lays them out and colours them.

use std::path::Path;

use crate::doctor::{self, Finding, Level};

/// Indentation of a fix's snippet lines: under the advice, past `     fix: `'s label.
const SNIPPET_INDENT: &str = "       ";

/// Checks the engine, BuildKit, the state directory and the checkout containing `dir` (its
/// configuration, dependency stages, hooks, volumes, disk), one line each, printed as each is
/// known; false (exit 1) when any failed, so scripts can gate on it.
pub fn run(env: &crate::env::Env, dir: &Path) -> anyhow::Result<bool> {
    let options = doctor::Options {
        buildkit_disabled: env.docker_buildkit_off(),
        env: env.clone(),
    };
    let rt = super::runtime()?;
    let findings = rt.block_on(doctor::diagnose(dir, &options, &mut |f| {
        print!("{}", render(f))
    }));
    Ok(!doctor::any_failed(&findings))
}

/// A finding as `doctor` prints it: `<level> <check>: <detail>`, then `     fix: <advice>`
/// and the fix's snippet, indented under it; each line ends in a newline.
fn render(f: &Finding) -> String {
    let tag = match f.level {
        Level::Ok => super::paint("ok  ", "32"),
        Level::Warn => super::paint("warn", "33"),
        Level::Fail => super::paint("FAIL", "31"),
    };
    let mut out = format!("{tag} {}: {}\n", f.check.label(), f.detail);
    if let Some(fix) = &f.fix {
        out.push_str(&format!("     fix: {}", fix.advice));
        if let Some(snippet) = &fix.snippet {
            for line in snippet.text.lines() {
                out.push('\n');
                out.push_str(SNIPPET_INDENT);
                out.push_str(line);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{Check, Fix, Language, Snippet};

    /// The layout `doctor` has always printed: a snippet sits under its advice, 7 spaces in.
    #[test]
    fn a_fix_prints_under_its_finding_with_the_snippet_indented() {
        let f = Finding {
            check: Check::VolumesShared,
            level: Level::Fail,
            detail: "compose.yaml volumes.uv has no `name:`".into(),
            fix: Some(Fix {
                advice: "in compose.yaml, give the volume its shared name:".into(),
                snippet: Some(Snippet {
                    language: Language::Yaml,
                    text: "volumes:\n  uv:\n    name: shop_uv\n    external: true".into(),
                }),
            }),
        };
        let text = render(&f);
        assert!(
            text.ends_with(" volumes shared: compose.yaml volumes.uv has no `name:`\n     fix: in compose.yaml, give the volume its shared name:\n       volumes:\n         uv:\n           name: shop_uv\n           external: true\n"),
            "{text}"
        );
        let plain = Finding { fix: None, ..f };
        assert!(
            render(&plain).ends_with(" volumes shared: compose.yaml volumes.uv has no `name:`\n")
        );
    }
}
