//! Dockerfile hints for `dockwarm doctor`: the prebuild keeps *layers* warm, but a
//! dependency change still re-downloads every package unless the install step uses a
//! cache mount, and a few settings silently defeat that mount.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

use super::deps::Analysis;
use super::{Dockerfile, Instruction};

/// One hint: where, what is wrong, and the line to write instead (or add).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The 1-based Dockerfile line the hint is about (the install's RUN, or the setting).
    pub line: usize,
    /// What costs time there and why, e.g. a package install without a cache mount.
    pub message: String,
    /// The line to write instead (or add), which `doctor` prints under the message.
    pub fix: String,
}

fn install_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"\b(uv\s+sync|uv\s+pip\s+install|pip3?\s+install|poetry\s+install|npm\s+(?:ci|install)|yarn\s+install|pnpm\s+install|bundle\s+install|go\s+mod\s+download|cargo\s+(?:build|fetch))\b",
        )
        .expect("static regex")
    })
}

fn inline_re(name: &str) -> Regex {
    Regex::new(&format!(r"\b{name}=([^\s;&|]*)")).expect("escaped name")
}

/// The tool an install command belongs to, and where its download cache lives in the
/// official images (running as root).
fn tool_of(cmd: &str) -> (&'static str, &'static str) {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    match w.first().copied().unwrap_or("") {
        "uv" => ("uv", "/root/.cache/uv"),
        "pip" | "pip3" => ("pip", "/root/.cache/pip"),
        "poetry" => ("poetry", "/root/.cache/pypoetry"),
        "npm" => ("npm", "/root/.npm"),
        "yarn" => ("yarn", "/usr/local/share/.cache/yarn"),
        "pnpm" => ("pnpm", "/root/.local/share/pnpm/store"),
        "bundle" => ("bundler", "/usr/local/bundle/cache"),
        "go" => ("go", "/go/pkg/mod"),
        _ => ("cargo", "/usr/local/cargo/registry"),
    }
}

fn uv_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\buv\s+(?:sync|pip\s+install|pip\s+sync)\b").expect("static regex")
    })
}

fn uv_no_cache_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\buv\s[^\n;&|]*--no-cache\b").expect("static regex"))
}

/// pip itself (not `uv pip`, which has its own cache) installing packages.
fn uses_pip(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\bpip3?\s+install\b").expect("static regex"));
    re.find_iter(text)
        .any(|m| !text[..m.start()].trim_end().ends_with("uv"))
}

/// The keyword and existing flags, to print a corrected instruction.
fn render_head(ins: &Instruction) -> String {
    let mut head = ins.keyword.clone();
    for f in &ins.flags {
        head.push(' ');
        head.push_str(&f.render());
    }
    head
}

fn truthy(v: &str) -> bool {
    let v = v.trim_matches(['"', '\'']);
    !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false") || v.eq_ignore_ascii_case("no"))
}

/// The RUN's shell text, heredoc bodies included (a heredoc RUN is the script).
fn script(ins: &Instruction) -> String {
    let mut s = match &ins.exec_form {
        Some(v) => v.join(" "),
        None => ins.args.clone(),
    };
    for h in &ins.heredocs {
        s.push('\n');
        s.push_str(&h.content());
    }
    s
}

/// Hints for every stage, ordered by line.
pub fn advice(df: &Dockerfile) -> Vec<Advice> {
    let no_args = BTreeMap::new();
    let an = Analysis::new(df, &no_args);
    let mut out = Vec::new();
    for (s, stage) in df.stages.iter().enumerate() {
        for (p, ins) in stage.instructions.iter().enumerate() {
            if ins.keyword != "RUN" {
                continue;
            }
            let text = script(ins);
            let Some(m) = install_re().find(&text) else {
                continue;
            };
            let (tool, cache_dir) = tool_of(m.as_str());
            let vars = an.scope(s, p);
            let line = ins.start_line;
            if !ins.has_cache_mount() {
                let mut fixed = render_head(ins);
                fixed.push_str(&format!(
                    " --mount=type=cache,target={cache_dir} {}",
                    ins.args
                ));
                out.push(Advice {
                    line,
                    message: format!(
                        "`{}` runs without a cache mount: every dependency change downloads all {tool} packages again",
                        m.as_str()
                    ),
                    fix: fixed,
                });
                continue;
            }
            if uses_pip(&text) {
                let flag = text.contains("--no-cache-dir");
                let env = vars.get("PIP_NO_CACHE_DIR").is_some_and(|v| truthy(v));
                let inline = inline_re("PIP_NO_CACHE_DIR")
                    .captures(&text)
                    .is_some_and(|c| truthy(&c[1]));
                if flag || env || inline {
                    let what = if flag {
                        "`--no-cache-dir`"
                    } else {
                        "`PIP_NO_CACHE_DIR`"
                    };
                    out.push(Advice {
                        line,
                        message: format!(
                            "pip runs with {what} under a cache mount: the mount stays empty and every package is downloaded again"
                        ),
                        fix: if flag {
                            let args = ins.args.replace(" --no-cache-dir", "");
                            format!("{} {args}", render_head(ins))
                        } else {
                            "remove PIP_NO_CACHE_DIR (ENV or inline) for this step".to_string()
                        },
                    });
                }
            }
            let uses_uv = uv_re().is_match(&text);
            if !uses_uv {
                continue;
            }
            let no_cache_env = vars.get("UV_NO_CACHE").is_some_and(|v| truthy(v));
            let no_cache_inline = inline_re("UV_NO_CACHE")
                .captures(&text)
                .is_some_and(|c| truthy(&c[1]));
            let no_cache_flag = uv_no_cache_re().is_match(&text);
            if no_cache_env || no_cache_inline || no_cache_flag {
                out.push(Advice {
                    line,
                    message: "uv runs with its cache disabled (UV_NO_CACHE or --no-cache) under a cache mount: the mount is never used".to_string(),
                    fix: "remove UV_NO_CACHE / --no-cache for this step".to_string(),
                });
            }
            let link_env = vars
                .get("UV_LINK_MODE")
                .is_some_and(|v| v.trim_matches(['"', '\'']) == "copy");
            let link_inline = inline_re("UV_LINK_MODE")
                .captures(&text)
                .is_some_and(|c| c[1].trim_matches(['"', '\'']) == "copy");
            let link_flag = text.contains("--link-mode=copy") || text.contains("--link-mode copy");
            if !(link_env || link_inline || link_flag) {
                out.push(Advice {
                    line,
                    message: "uv installs from a cache mount without UV_LINK_MODE=copy: hardlinks cannot cross the mount, so uv warns and falls back to copying".to_string(),
                    fix: "ENV UV_LINK_MODE=copy".to_string(),
                });
            }
        }
    }
    out.sort_by_key(|a| a.line);
    out
}
