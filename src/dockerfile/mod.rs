//! Dockerfile understanding for dockwarm.
//!
//! dockwarm prebuilds the *dependency stage* of a project so that the user's own
//! `docker build` later finds those layers CACHED. That only works if we read the
//! Dockerfile exactly as BuildKit's dockerfile frontend does (continuations,
//! heredocs, the escape directive, flags), so the parser mirrors BuildKit's
//! `frontend/dockerfile/parser` rather than inventing a friendlier grammar.
//!
//! Submodules: `parse` (text → [`Dockerfile`]), `shell` (BuildKit-style
//! word expansion), `deps` (finding the dependency stage), `advice` (`doctor` hints).

mod advice;
mod deps;
mod parse;
mod shell;

#[cfg(test)]
mod tests;

pub use advice::{advice, Advice};
pub use deps::{dependency_stage, DepsError, DepsPlan};
pub use parse::{parse, ParseError};
pub use shell::{substitute, substitute_with_escape};

/// A parsed Dockerfile: the structure BuildKit builds from, plus the original text so
/// that a truncated Dockerfile can reuse the user's bytes verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character in effect (`\` unless `# escape=` says otherwise); shell
    /// word expansion depends on it.
    pub escape: char,
    /// Parser directives (`# syntax=`, `# escape=`, `# check=`), lowercase names.
    pub directives: Vec<Directive>,
    /// `ARG` instructions before the first `FROM`: the only variables FROM lines see.
    pub global_args: Vec<Instruction>,
    /// Build stages in file order; index = BuildKit's stage index.
    pub stages: Vec<Stage>,
    /// The text that was parsed, byte for byte.
    pub text: String,
}

/// A parser directive at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, lowercased (`syntax`, `escape`, `check`).
    pub name: String,
    /// Its value as written, e.g. the syntax image or the escape character.
    pub value: String,
    /// The 1-based line it sits on.
    pub line: usize,
}

/// One build stage (`FROM ...` and the instructions up to the next `FROM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its position in the file, from 0: how `COPY --from=N` and messages name an unnamed stage.
    pub index: usize,
    /// The `AS name`, as written (BuildKit compares stage names case-insensitively).
    pub name: Option<String>,
    /// The base as written, before `ARG` substitution: an image or an earlier stage name.
    pub base: String,
    /// `--platform=` of the FROM line, as written.
    pub platform: Option<String>,
    /// The FROM instruction itself.
    pub from: Instruction,
    /// The instructions after FROM.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// Last line of the stage's last instruction (heredoc bodies included); the end of
    /// what a build of this stage reads.
    pub fn end_line(&self) -> usize {
        self.instructions
            .last()
            .map_or(self.from.end_line, |i| i.end_line)
    }

    /// How the stage is named in messages: "`deps`" or "0".
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("`{n}`"),
            None => self.index.to_string(),
        }
    }
}

/// A builder flag such as `--mount=type=cache,target=/x` (`name` = "mount") or
/// `--link` (`value` = None). Quotes are already removed, as BuildKit does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag's name without the dashes, e.g. "mount" or "from".
    pub name: String,
    /// What follows the `=`; None for a bare flag such as `--link`.
    pub value: Option<String>,
}

impl Flag {
    /// The flag as it would be written back (`--name=value`).
    pub fn render(&self) -> String {
        match &self.value {
            Some(v) => format!("--{}={}", self.name, v),
            None => format!("--{}", self.name),
        }
    }
}

/// A heredoc attached to an instruction (`RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// `<<-`: BuildKit strips leading tabs from the body (and the terminator line).
    pub chomp: bool,
    /// False when the delimiter was quoted: the body is then not variable-expanded.
    pub expand: bool,
    /// File descriptor prefix (`3<<EOF`), 0 when absent.
    pub fd: u32,
    /// The body as written, each line with its newline, without the terminator line.
    /// Leading tabs are *not* stripped here even for `<<-`; see [`Heredoc::content`].
    pub body: String,
}

impl Heredoc {
    /// The content BuildKit uses: the body, with leading tabs removed for `<<-`.
    pub fn content(&self) -> String {
        if !self.chomp {
            return self.body.clone();
        }
        self.body
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// One instruction, with enough of the source kept to reproduce or fingerprint it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Uppercased keyword (`RUN`, `COPY`, ...).
    pub keyword: String,
    /// The builder flags before the arguments (`--mount=...`, `--from=...`), in order.
    pub flags: Vec<Flag>,
    /// Arguments after the flags, continuation lines joined exactly as BuildKit joins
    /// them (that string is what ends up in a RUN's cache key), trimmed.
    pub args: String,
    /// The exec (JSON array) form, when the instruction accepts one and used it.
    pub exec_form: Option<Vec<String>>,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line, including heredoc bodies and their terminators.
    pub end_line: usize,
    /// The original text of lines `start_line..=end_line`, byte for byte.
    pub raw: String,
    /// The heredocs the instruction opens, in the order their bodies follow it.
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    /// The value of the first flag with this name (`--from`, `--platform`, ...).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// Argument words: the JSON array in exec form, else whitespace-separated words
    /// (BuildKit's `parseStringsWhitespaceDelimited`, used by COPY/ADD/FROM).
    pub fn words(&self) -> Vec<String> {
        match &self.exec_form {
            Some(v) => v.clone(),
            None => self.args.split_whitespace().map(str::to_string).collect(),
        }
    }

    /// `--mount` flags of a RUN, split into their `key=value` options.
    pub fn mounts(&self) -> Vec<BTreeMap<String, String>> {
        self.flags
            .iter()
            .filter(|f| f.name == "mount")
            .filter_map(|f| f.value.as_deref())
            .map(parse_mount)
            .collect()
    }

    /// Whether a RUN has a `--mount=type=cache`: the thing that keeps package
    /// downloads warm across rebuilds.
    pub fn has_cache_mount(&self) -> bool {
        self.mounts()
            .iter()
            .any(|m| m.get("type").map(String::as_str) == Some("cache"))
    }

    /// A one-line human summary, e.g. "RUN uv sync --frozen".
    pub fn summary(&self) -> String {
        let args: Vec<&str> = self.args.split_whitespace().collect();
        let mut s = format!("{} {}", self.keyword, args.join(" "));
        if s.chars().count() > 60 {
            s = s.chars().take(57).collect::<String>() + "...";
        }
        s.trim_end().to_string()
    }

    /// The canonical rendering used for fingerprints: keyword, flags, arguments and
    /// heredoc bodies; comments, indentation and continuation layout are gone.
    pub fn canonical(&self) -> String {
        let mut out = self.keyword.clone();
        for f in &self.flags {
            out.push(' ');
            out.push_str(&f.render());
        }
        let args = match &self.exec_form {
            Some(v) => serde_json::to_string(v).unwrap_or_else(|_| self.args.clone()),
            None => self.args.clone(),
        };
        if !args.is_empty() {
            out.push(' ');
            out.push_str(&args);
        }
        for h in &self.heredocs {
            out.push_str(&format!("\n<<{}\n{}{}", h.name, h.content(), h.name));
        }
        out
    }
}

use std::collections::BTreeMap;

/// Splits `type=cache,target=/x,sharing=locked` into a map. A bare key (`rw`) maps to
/// "true", as BuildKit's CSV option parser treats it.
fn parse_mount(spec: &str) -> BTreeMap<String, String> {
    spec.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (p.trim().to_ascii_lowercase(), "true".to_string()),
        })
        .collect()
}
