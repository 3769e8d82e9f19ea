//! Finding the dependency stage: the part of the build that only depends on lockfiles,
//! so that building it ahead of time leaves the user's later build nothing to redo
//! until the dependencies change.

use std::collections::{BTreeMap, BTreeSet};

use super::parse::parse_heredoc_word;
use super::shell::substitute_with_escape;
use super::{Dockerfile, Instruction, Stage};

/// What to prebuild, and what it depends on (for the fingerprint).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DepsPlan {
    /// Value for `--target`; None = the last stage of `dockerfile_text`.
    pub build_target: Option<String>,
    /// Dockerfile text to build: the original when a whole named stage (or the last
    /// stage) is built, otherwise the original cut after the dependency prefix.
    pub dockerfile_text: String,
    /// Whether `dockerfile_text` is the original cut after the dependency prefix, so the build
    /// must be given that text rather than the user's file.
    pub truncated: bool,
    /// Context sources (after ARG/ENV substitution, as written otherwise) of every
    /// COPY/ADD from the build context in the built instructions.
    pub context_sources: Vec<String>,
    /// External images (after substitution; not stages, not `scratch`) the built
    /// instructions start FROM or copy/mount from.
    pub base_images: Vec<String>,
    /// Sources the built instructions read from a named reference that is not a stage
    /// (`COPY --from=shared a b`, `RUN --mount=from=shared,source=x`): an image, or a
    /// named build context (compose's `additional_contexts`) whose files are inputs.
    pub named_sources: BTreeMap<String, Vec<String>>,
    /// Canonical rendering of the built instructions, for the fingerprint.
    pub definition: String,
    /// Human summary: "stage `deps` (lines 3-9)" or "stage 0 up to line 7 (RUN uv sync)".
    pub description: String,
}

/// Why no dependency stage could be chosen; messages are written for `doctor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepsError {
    /// The configured `target` or `deps_target` names no stage in the Dockerfile.
    #[error("no build stage named `{name}`; stages: {}", available.join(", "))]
    UnknownStage {
        /// The stage name that was asked for.
        name: String,
        /// Stage names, or "N (unnamed)" for stages without `AS`.
        available: Vec<String>,
    },
    /// No prefix of the target stage installs from specific files before the source arrives
    /// (source copied first, no lockfile copied, or no RUN after it); the message says what to
    /// move.
    #[error("line {line}: {message}")]
    NoDependencyStage {
        /// The line to point at: the source copy, else the last lockfile copy, else the
        /// target stage's FROM.
        line: usize,
        /// Line of the first COPY/ADD of the whole source, if any.
        source_copy_line: Option<usize>,
        /// Line of the last COPY/ADD of specific input files before it, if any.
        input_copy_line: Option<usize>,
        /// What was found and how to reorder the Dockerfile, written for `doctor`.
        message: String,
    },
}

/// Chooses the dependency stage.
///
/// `target` is the user's `--target` (None = last stage); `deps_target` names a stage
/// to prebuild whole, overriding detection. `is_context_dir` answers whether a path
/// relative to the build context is a directory (copying a directory means copying
/// source, not a lockfile).
pub fn dependency_stage(
    df: &Dockerfile,
    target: Option<&str>,
    deps_target: Option<&str>,
    build_args: &BTreeMap<String, String>,
    is_context_dir: &dyn Fn(&str) -> bool,
) -> Result<DepsPlan, DepsError> {
    let an = Analysis::new(df, build_args);
    if let Some(name) = deps_target {
        let s = find_stage(df, name)?;
        let count = df.stages[s].instructions.len();
        return Ok(an.plan(s, count));
    }
    let t = match target {
        Some(name) => find_stage(df, name)?,
        None => df
            .stages
            .len()
            .checked_sub(1)
            .ok_or_else(|| unknown_stage(df, "(last stage)"))?,
    };
    an.detect(t, is_context_dir)
}

fn unknown_stage(df: &Dockerfile, name: &str) -> DepsError {
    DepsError::UnknownStage {
        name: name.to_string(),
        available: df
            .stages
            .iter()
            .map(|s| match &s.name {
                Some(n) => n.clone(),
                None => format!("{} (unnamed)", s.index),
            })
            .collect(),
    }
}

/// `--target` only accepts stage names (BuildKit compares them case-insensitively).
fn find_stage(df: &Dockerfile, name: &str) -> Result<usize, DepsError> {
    df.stages
        .iter()
        .position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| unknown_stage(df, name))
}

/// Variables visible to an instruction. ENV wins over ARG of the same name, as in
/// Docker.
#[derive(Debug, Clone, Default)]
struct Scope {
    vals: BTreeMap<String, String>,
    env: BTreeSet<String>,
}

/// Whether a COPY/ADD is from the build context and what kind of copy it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CopyKind {
    NotContext,
    /// Specific files: lockfiles, manifests.
    Input,
    /// The whole source or a directory of it.
    Source,
}

/// Per-Dockerfile facts every decision needs: resolved global ARGs, stage parents and
/// the variable scope before each instruction.
pub(super) struct Analysis<'a> {
    df: &'a Dockerfile,
    build_args: &'a BTreeMap<String, String>,
    meta: BTreeMap<String, String>,
    /// FROM image after substitution.
    bases: Vec<String>,
    parents: Vec<Option<usize>>,
    /// `scopes[s][i]`: the scope instruction `i` of stage `s` runs in.
    scopes: Vec<Vec<Scope>>,
}

impl<'a> Analysis<'a> {
    /// Resolves the global ARGs against `build_args` and walks every stage once, so each later
    /// question about the Dockerfile is a lookup.
    pub(super) fn new(df: &'a Dockerfile, build_args: &'a BTreeMap<String, String>) -> Self {
        let mut meta = BTreeMap::new();
        for arg in &df.global_args {
            for (name, default) in arg_words(arg, df.escape) {
                let value = build_args
                    .get(&name)
                    .cloned()
                    .or_else(|| default.map(|d| substitute_with_escape(&d, &meta, df.escape)));
                match value {
                    Some(v) => meta.insert(name, v),
                    None => meta.remove(&name),
                };
            }
        }
        let mut an = Analysis {
            df,
            build_args,
            meta,
            bases: Vec::new(),
            parents: Vec::new(),
            scopes: Vec::new(),
        };
        let mut finals: Vec<Scope> = Vec::new();
        for (index, stage) in df.stages.iter().enumerate() {
            let base = substitute_with_escape(&stage.base, &an.meta, df.escape);
            let parent = an.stage_by_name(&base, index);
            let mut scope = parent.map(|p| finals[p].clone()).unwrap_or_default();
            let mut per = Vec::with_capacity(stage.instructions.len());
            for ins in &stage.instructions {
                per.push(scope.clone());
                an.apply(&mut scope, ins);
            }
            an.bases.push(base);
            an.parents.push(parent);
            an.scopes.push(per);
            finals.push(scope);
        }
        an
    }

    fn stage_by_name(&self, name: &str, before: usize) -> Option<usize> {
        self.df.stages[..before].iter().position(|s| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// A `--from`/`from=` reference: an earlier stage by name or index, else an image.
    fn resolve_from(&self, reference: &str, current: usize) -> Result<usize, String> {
        if let Some(s) = self.stage_by_name(reference, current) {
            return Ok(s);
        }
        match reference.parse::<usize>() {
            Ok(i) if i < current => Ok(i),
            _ => Err(reference.to_string()),
        }
    }

    fn apply(&self, scope: &mut Scope, ins: &Instruction) {
        let esc = self.df.escape;
        match ins.keyword.as_str() {
            "ARG" => {
                for (name, default) in arg_words(ins, esc) {
                    let value = self
                        .build_args
                        .get(&name)
                        .cloned()
                        .or_else(|| match default {
                            Some(d) => Some(substitute_with_escape(&d, &scope.vals, esc)),
                            None => self.meta.get(&name).cloned(),
                        });
                    if scope.env.contains(&name) {
                        continue;
                    }
                    match value {
                        Some(v) => scope.vals.insert(name, v),
                        None => scope.vals.remove(&name),
                    };
                }
            }
            "ENV" => {
                for (name, value) in env_pairs(ins, esc) {
                    let v = substitute_with_escape(&value, &scope.vals, esc);
                    scope.vals.insert(name.clone(), v);
                    scope.env.insert(name);
                }
            }
            _ => {}
        }
    }

    /// The variables (ARG and ENV, expanded) instruction `pos` of stage `stage` sees, as BuildKit
    /// would expand its words; `doctor`'s advice reads the install's environment from it.
    pub(super) fn scope(&self, stage: usize, pos: usize) -> &BTreeMap<String, String> {
        &self.scopes[stage][pos].vals
    }

    /// Stages from the root ancestor down to `s`, following `FROM <stage>`.
    fn chain(&self, s: usize) -> Vec<usize> {
        let mut chain = vec![s];
        let mut cur = s;
        while let Some(p) = self.parents[cur] {
            chain.push(p);
            cur = p;
        }
        chain.reverse();
        chain
    }

    /// `--from` of a COPY/ADD and `from=` of RUN mounts, expanded, in order.
    fn stage_refs(&self, stage: usize, pos: usize) -> Vec<String> {
        let ins = &self.df.stages[stage].instructions[pos];
        let vars = self.scope(stage, pos);
        let mut refs = Vec::new();
        if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
            if let Some(f) = ins.flag("from") {
                refs.push(substitute_with_escape(f, vars, self.df.escape));
            }
        }
        if ins.keyword == "RUN" {
            for m in ins.mounts() {
                if let Some(f) = m.get("from") {
                    refs.push(substitute_with_escape(f, vars, self.df.escape));
                }
            }
        }
        refs
    }

    /// Context sources of a COPY/ADD (None if it is not a copy from the context).
    fn context_sources(&self, stage: usize, pos: usize) -> Option<Vec<String>> {
        let ins = &self.df.stages[stage].instructions[pos];
        if !matches!(ins.keyword.as_str(), "COPY" | "ADD") || ins.flag("from").is_some() {
            return None;
        }
        let words = ins.words();
        let vars = self.scope(stage, pos);
        let sources = words[..words.len().saturating_sub(1)]
            .iter()
            .filter(|w| ins.exec_form.is_some() || parse_heredoc_word(w).is_none())
            .filter(|w| !is_remote(w))
            .map(|w| substitute_with_escape(w, vars, self.df.escape))
            .collect::<Vec<_>>();
        if sources.is_empty() {
            None
        } else {
            Some(sources)
        }
    }

    /// What a COPY/ADD `--from` or a RUN bind mount `from=` reads from a reference that is
    /// not a stage: the reference and its source paths (`.` for a whole mount).
    fn named_sources(&self, stage: usize, pos: usize) -> Option<(String, Vec<String>)> {
        let ins = &self.df.stages[stage].instructions[pos];
        let vars = self.scope(stage, pos);
        let expand = |w: &str| substitute_with_escape(w, vars, self.df.escape);
        if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
            let from = expand(ins.flag("from")?);
            self.resolve_from(&from, stage).err()?;
            let words = ins.words();
            let sources = words[..words.len().saturating_sub(1)]
                .iter()
                .filter(|w| ins.exec_form.is_some() || parse_heredoc_word(w).is_none())
                .map(|w| expand(w))
                .collect();
            return Some((from, sources));
        }
        if ins.keyword == "RUN" {
            for m in ins.mounts() {
                let Some(from) = m.get("from").map(|f| expand(f)) else {
                    continue;
                };
                if self.resolve_from(&from, stage).is_ok() {
                    continue;
                }
                let source = m.get("source").or_else(|| m.get("src")).map(|s| expand(s));
                return Some((from, vec![source.unwrap_or_else(|| ".".into())]));
            }
        }
        None
    }

    fn copy_kind(&self, stage: usize, pos: usize, is_dir: &dyn Fn(&str) -> bool) -> CopyKind {
        match self.context_sources(stage, pos) {
            None => CopyKind::NotContext,
            Some(srcs) if srcs.iter().any(|s| is_source_path(s, is_dir)) => CopyKind::Source,
            Some(_) => CopyKind::Input,
        }
    }

    /// Automatic detection for target stage `t` (see the crate docs for the rules).
    fn detect(&self, t: usize, is_dir: &dyn Fn(&str) -> bool) -> Result<DepsPlan, DepsError> {
        let items: Vec<(usize, usize)> = self
            .chain(t)
            .into_iter()
            .flat_map(|s| (0..self.df.stages[s].instructions.len()).map(move |p| (s, p)))
            .collect();
        let mut source: Option<(usize, usize)> = None;
        let mut last_input: Option<(usize, usize)> = None;
        let mut last_run: Option<(usize, usize)> = None;
        for &(s, p) in &items {
            match self.copy_kind(s, p, is_dir) {
                CopyKind::Source => {
                    source = Some((s, p));
                    break;
                }
                CopyKind::Input => {
                    last_input = Some((s, p));
                    last_run = None;
                }
                CopyKind::NotContext => {
                    if last_input.is_some() && self.df.stages[s].instructions[p].keyword == "RUN" {
                        last_run = Some((s, p));
                    }
                }
            }
        }
        let ins_at = |(s, p): (usize, usize)| &self.df.stages[s].instructions[p];
        if let Some(end) = last_run {
            return Ok(self.plan(end.0, end.1 + 1));
        }
        if last_input.is_none() {
            // Builder pattern: the target copies installed dependencies out of a stage
            // that did the install; prebuild that stage instead.
            let chain = self.chain(t);
            for &(s, p) in &items {
                for r in self.stage_refs(s, p) {
                    if let Ok(dep) = self.resolve_from(&r, s) {
                        if !chain.contains(&dep) {
                            if let Ok(plan) = self.detect(dep, is_dir) {
                                return Ok(plan);
                            }
                        }
                    }
                }
            }
        }
        let source_line = source.map(|x| ins_at(x).start_line);
        let input_line = last_input.map(|x| ins_at(x).start_line);
        let stage = &self.df.stages[t];
        let message = match (source, last_input) {
            (Some(src), None) => format!(
                "the source is copied ({} at line {}) before any dependency install; copy the lockfiles and install first",
                ins_at(src).summary(),
                ins_at(src).start_line
            ),
            (None, None) => format!(
                "stage {} (lines {}-{}) copies no dependency files from the build context; copy the lockfiles and install first",
                stage.label(),
                stage.from.start_line,
                stage.end_line()
            ),
            (src, Some(inp)) => {
                let mut m = format!(
                    "no RUN installs dependencies after the last lockfile copy ({} at line {})",
                    ins_at(inp).summary(),
                    ins_at(inp).start_line
                );
                if let Some(src) = src {
                    m.push_str(&format!(
                        " and before the source is copied ({} at line {})",
                        ins_at(src).summary(),
                        ins_at(src).start_line
                    ));
                }
                m.push_str("; install right after copying the lockfiles");
                m
            }
        };
        Err(DepsError::NoDependencyStage {
            line: source_line.or(input_line).unwrap_or(stage.from.start_line),
            source_copy_line: source_line,
            input_copy_line: input_line,
            message,
        })
    }

    /// The plan for building stage `es` up to (excluding) instruction `count`, with its
    /// ancestors and every stage it copies or mounts from.
    fn plan(&self, es: usize, count: usize) -> DepsPlan {
        let df = self.df;
        // kept[s] = number of instructions of stage s that are built.
        let mut kept: BTreeMap<usize, usize> = BTreeMap::new();
        let mut work: Vec<(usize, usize)> = vec![(es, count)];
        while let Some((s, n)) = work.pop() {
            let mut stages = self.chain(s);
            stages.pop();
            let mut todo: Vec<(usize, usize)> = stages
                .into_iter()
                .map(|a| (a, df.stages[a].instructions.len()))
                .collect();
            todo.push((s, n));
            for (st, cnt) in todo {
                let prev = kept.get(&st).copied();
                if prev.is_some_and(|p| p >= cnt) {
                    continue;
                }
                kept.insert(st, cnt);
                for p in prev.unwrap_or(0)..cnt {
                    for r in self.stage_refs(st, p) {
                        if let Ok(dep) = self.resolve_from(&r, st) {
                            work.push((dep, df.stages[dep].instructions.len()));
                        }
                    }
                }
            }
        }

        let mut sources: Vec<String> = Vec::new();
        let mut images: Vec<String> = Vec::new();
        let mut named_sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let push = |v: &mut Vec<String>, x: String| {
            if !v.contains(&x) {
                v.push(x);
            }
        };
        let mut def = String::new();
        for d in &df.directives {
            if d.name == "syntax" {
                def.push_str(&format!("# syntax={}\n", d.value));
            }
        }
        for a in &df.global_args {
            def.push_str(&a.canonical());
            def.push('\n');
        }
        let mut overridden: BTreeSet<String> = BTreeSet::new();
        for (name, _) in df.global_args.iter().flat_map(|a| arg_words(a, df.escape)) {
            overridden.insert(name);
        }
        for (&s, &n) in &kept {
            let stage = &df.stages[s];
            if self.parents[s].is_none() && !self.bases[s].eq_ignore_ascii_case("scratch") {
                push(&mut images, self.bases[s].clone());
            }
            def.push_str(&format!(
                "FROM{} {}{}\n",
                stage
                    .platform
                    .as_ref()
                    .map(|p| format!(" --platform={p}"))
                    .unwrap_or_default(),
                self.bases[s],
                stage
                    .name
                    .as_ref()
                    .map(|n| format!(" AS {}", n.to_ascii_lowercase()))
                    .unwrap_or_default()
            ));
            for p in 0..n {
                let ins = &stage.instructions[p];
                def.push_str(&ins.canonical());
                def.push('\n');
                if ins.keyword == "ARG" {
                    for (name, _) in arg_words(ins, df.escape) {
                        overridden.insert(name);
                    }
                }
                if let Some(srcs) = self.context_sources(s, p) {
                    for src in srcs {
                        push(&mut sources, src);
                    }
                }
                for r in self.stage_refs(s, p) {
                    if let Err(image) = self.resolve_from(&r, s) {
                        if !image.eq_ignore_ascii_case("scratch") {
                            push(&mut images, image);
                        }
                    }
                }
                if let Some((name, srcs)) = self.named_sources(s, p) {
                    let list = named_sources.entry(name).or_default();
                    for src in srcs {
                        push(list, src);
                    }
                }
            }
        }
        // Build args change RUN cache keys of stages that declare them.
        for name in overridden {
            if let Some(v) = self.build_args.get(&name) {
                def.push_str(&format!("build-arg {name}={v}\n"));
            }
        }

        let stage: &Stage = &df.stages[es];
        let whole = count == stage.instructions.len();
        let last = es + 1 == df.stages.len();
        let (build_target, text, truncated) = match (&stage.name, whole) {
            (Some(name), true) => (Some(name.clone()), df.text.clone(), false),
            (None, true) if last => (None, df.text.clone(), false),
            _ => {
                let end = if count == 0 {
                    stage.from.end_line
                } else {
                    stage.instructions[count - 1].end_line
                };
                (None, truncate_text(&df.text, end), true)
            }
        };
        let description = if whole {
            format!(
                "stage {} (lines {}-{})",
                stage.label(),
                stage.from.start_line,
                stage.end_line()
            )
        } else {
            let ins = &stage.instructions[count.saturating_sub(1)];
            format!(
                "stage {} up to line {} ({})",
                stage.label(),
                ins.end_line,
                ins.summary()
            )
        };
        DepsPlan {
            build_target,
            dockerfile_text: text,
            truncated,
            context_sources: sources,
            base_images: images,
            named_sources,
            definition: def,
            description,
        }
    }
}

/// The original text up to and including line `end` (1-based), newline-terminated.
fn truncate_text(text: &str, end: usize) -> String {
    let mut out: String = text.split_inclusive('\n').take(end).collect();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn is_remote(src: &str) -> bool {
    src.contains("://") || src.starts_with("git@")
}

/// Whether a context path means "the source" rather than specific input files: the
/// context root, a directory, a trailing-slash path, or a glob whose last component is
/// a bare `*` (`src/*`). File globs such as `package*.json` or `*.lock` are inputs.
fn is_source_path(src: &str, is_dir: &dyn Fn(&str) -> bool) -> bool {
    let mut p = src.trim();
    loop {
        let before = p;
        p = p.trim_start_matches('/');
        p = p.strip_prefix("./").unwrap_or(p);
        if p == before {
            break;
        }
    }
    let trailing_slash = p.ends_with('/');
    let p = p.trim_end_matches('/');
    let p = p.strip_suffix("/.").unwrap_or(p);
    if p.is_empty() || p == "." || trailing_slash {
        return true;
    }
    if p.contains(['*', '?', '[']) {
        return p.rsplit('/').next() == Some("*");
    }
    is_dir(p)
}

/// `ARG a b=c` → [("a", None), ("b", Some("c"))]; the default stays raw (quotes and
/// variables are resolved later against the right scope).
pub(super) fn arg_words(ins: &Instruction, escape: char) -> Vec<(String, Option<String>)> {
    if ins.keyword != "ARG" {
        return Vec::new();
    }
    quoted_words(&ins.args, escape)
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect()
}

/// `ENV a=b c="d e"` and the legacy `ENV a b c`; values stay raw.
pub(super) fn env_pairs(ins: &Instruction, escape: char) -> Vec<(String, String)> {
    let words = quoted_words(&ins.args, escape);
    match words.first() {
        None => Vec::new(),
        Some(first) if !first.contains('=') => {
            let rest = ins
                .args
                .trim_start()
                .get(first.len()..)
                .unwrap_or("")
                .trim()
                .to_string();
            vec![(first.clone(), rest)]
        }
        Some(_) => words
            .into_iter()
            .filter_map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
    }
}

/// BuildKit's `parseWords`: whitespace-separated words where quotes group, with quotes
/// and escapes kept for the later expansion.
fn quoted_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
                continue;
            }
            None => {
                started = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    word.push(c);
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    continue;
                }
            }
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    word.push(c);
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    continue;
                }
            }
        }
        word.push(c);
    }
    if started {
        words.push(word);
    }
    words
}
