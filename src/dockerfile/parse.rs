//! The line-level parser, a port of BuildKit's `frontend/dockerfile/parser`.
//!
//! The quirks reproduced here (comments skipped *inside* continuations, the
//! escape-escape rule for continuations, heredoc detection on the joined line,
//! first-JSON-value exec form) are the ones that change which instructions exist and
//! what their arguments are; getting them wrong would make the prebuild differ from
//! the user's build and miss the cache.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

use super::{Directive, Dockerfile, Flag, Heredoc, Instruction, Stage};

/// A Dockerfile BuildKit would reject, with the 1-based line it would blame. It displays as the
/// message alone: whoever knows the file's path puts `path:line:1:` before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The 1-based line BuildKit would blame.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Instructions whose arguments may be a JSON array (BuildKit's parseMaybeJSON and
/// parseMaybeJSONToList users).
const JSON_KEYWORDS: &[&str] = &["ADD", "CMD", "COPY", "ENTRYPOINT", "RUN", "SHELL", "VOLUME"];

const HEREDOC_KEYWORDS: &[&str] = &["ADD", "COPY", "RUN"];

fn directive_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$").expect("static regex")
    })
}

fn heredoc_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(\d*)<<(-?)([^<]*)$").expect("static regex"))
}

fn stage_name_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)^[a-z][a-z0-9\-_.]*$").expect("static regex"))
}

/// Parser-directive state. Directives are only honoured until the first line that is
/// not one, exactly like BuildKit (a blank line ends them too).
struct Directives {
    escape: char,
    done: bool,
    seen: BTreeSet<String>,
    found: Vec<Directive>,
}

impl Directives {
    fn check(&mut self, token: &str, line: usize) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some(caps) = directive_re().captures(token) else {
            self.done = true;
            return Ok(());
        };
        let name = caps[1].to_ascii_lowercase();
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(name.clone()) {
            return Err(err(
                line,
                format!("only one {name} parser directive can be used"),
            ));
        }
        let value = caps[2].to_string();
        if name == "escape" {
            self.escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(err(
                        line,
                        format!("invalid escape token '{other}' does not match ` or \\"),
                    ))
                }
            };
        }
        self.found.push(Directive { name, value, line });
        Ok(())
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// BuildKit's continuation rule: the escape char, then only spaces/tabs, at the end of
/// the line, and not itself escaped (`\\` at the end is a literal backslash).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, false)
    } else {
        (line, true)
    }
}

/// A logical line: an instruction's joined text and where it lives.
struct Logical {
    text: String,
    start: usize,
    end: usize,
    heredocs: Vec<Heredoc>,
}

/// Parses a Dockerfile the way BuildKit's frontend does.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut dirs = Directives {
        escape: '\\',
        done: false,
        seen: BTreeSet::new(),
        found: Vec::new(),
    };
    let mut instructions = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = if i == 0 {
            lines[0].trim_start_matches('\u{feff}')
        } else {
            lines[i]
        };
        let token = trim_newline(first).trim_start();
        dirs.check(token, i + 1)?;
        let token = if token.starts_with('#') { "" } else { token };
        i += 1;
        let start = i;
        let (first_part, mut eol) = trim_continuation(token, dirs.escape);
        if eol && first_part.is_empty() {
            continue;
        }
        let mut joined = first_part.to_string();
        while !eol && i < lines.len() {
            let cont = trim_newline(lines[i]);
            dirs.check(cont, i + 1)?;
            i += 1;
            let trimmed = cont.trim_start();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (part, e) = trim_continuation(cont, dirs.escape);
            joined.push_str(part);
            eol = e;
        }
        let mut logical = Logical {
            text: joined,
            start,
            end: i,
            heredocs: Vec::new(),
        };
        let ins_probe = split_instruction(&logical.text, start)?;
        if can_contain_heredoc(&ins_probe) {
            for mut doc in heredocs_from_line(&logical.text) {
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let mut candidate = trim_newline(l);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.body.push_str(l);
                }
                if !terminated {
                    return Err(err(
                        start,
                        format!(
                            "unterminated heredoc <<{} started at line {start}",
                            doc.name
                        ),
                    ));
                }
                logical.heredocs.push(doc);
            }
            logical.end = i;
        }
        let raw: String = lines[logical.start - 1..logical.end].concat();
        let mut ins = ins_probe;
        ins.end_line = logical.end;
        ins.raw = raw;
        ins.heredocs = logical.heredocs;
        instructions.push(ins);
    }
    if instructions.is_empty() {
        return Err(err(lines.len().max(1), "file with no instructions"));
    }
    structure(text, dirs.escape, dirs.found, instructions)
}

/// Groups instructions into global ARGs and stages, validating what BuildKit validates
/// when it turns the AST into stages.
fn structure(
    text: &str,
    escape: char,
    directives: Vec<Directive>,
    instructions: Vec<Instruction>,
) -> Result<Dockerfile, ParseError> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions {
        if ins.keyword == "FROM" {
            let index = stages.len();
            let words: Vec<&str> = ins.args.split_whitespace().collect();
            let (base, name) = match words.as_slice() {
                [] => return Err(err(ins.start_line, "FROM expected an image")),
                [image] => (image.to_string(), None),
                [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    (image.to_string(), Some(name.to_string()))
                }
                _ => {
                    return Err(err(
                        ins.start_line,
                        "FROM requires either one or three arguments (image [AS name])",
                    ))
                }
            };
            if let Some(n) = &name {
                if !stage_name_re().is_match(n) {
                    return Err(err(
                        ins.start_line,
                        format!("invalid name for build stage: {n:?}, name can't start with a number or contain symbols"),
                    ));
                }
                if stages
                    .iter()
                    .any(|s| s.name.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(n)))
                {
                    return Err(err(ins.start_line, format!("duplicate stage name {n:?}")));
                }
            }
            stages.push(Stage {
                index,
                name,
                base,
                platform: ins.flag("platform").map(str::to_string),
                from: ins,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(ins);
        } else if ins.keyword == "ARG" {
            global_args.push(ins);
        } else {
            return Err(err(
                ins.start_line,
                format!("instruction before the first FROM: {}", ins.keyword),
            ));
        }
    }
    if stages.is_empty() {
        let line = global_args.last().map_or(1, |a: &Instruction| a.end_line);
        return Err(err(line, "no FROM instruction: nothing to build"));
    }
    Ok(Dockerfile {
        escape,
        directives,
        global_args,
        stages,
        text: text.to_string(),
    })
}

/// BuildKit's `splitCommand` + `extractBuilderFlags` + the JSON-form detection.
fn split_instruction(line: &str, start: usize) -> Result<Instruction, ParseError> {
    let trimmed = line.trim();
    let (cmd, rest) = match trimmed.find([' ', '\t', '\x0b', '\x0c', '\r']) {
        Some(p) => (&trimmed[..p], &trimmed[p..]),
        None => (trimmed, ""),
    };
    let keyword = cmd.to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        return Err(err(start, format!("unknown instruction: {cmd}")));
    }
    let (args, flag_words) = extract_flags(rest);
    let args = args.trim().to_string();
    let flags = flag_words
        .into_iter()
        .map(|w| {
            let w = w.strip_prefix("--").unwrap_or(&w).to_string();
            match w.split_once('=') {
                Some((n, v)) => Flag {
                    name: n.to_string(),
                    value: Some(v.to_string()),
                },
                None => Flag {
                    name: w,
                    value: None,
                },
            }
        })
        .collect();
    let exec_form = if JSON_KEYWORDS.contains(&keyword.as_str()) {
        parse_json_array(&args).map_err(|m| err(start, m))?
    } else {
        None
    };
    Ok(Instruction {
        keyword,
        flags,
        args,
        exec_form,
        start_line: start,
        end_line: start,
        raw: String::new(),
        heredocs: Vec::new(),
    })
}

/// BuildKit decodes the *first* JSON value of the arguments; a non-JSON argument is
/// the shell form, but a JSON array of non-strings is an error.
fn parse_json_array(args: &str) -> Result<Option<Vec<String>>, String> {
    if !args.starts_with('[') {
        return Ok(None);
    }
    let mut stream = serde_json::Deserializer::from_str(args).into_iter::<serde_json::Value>();
    let Some(Ok(serde_json::Value::Array(items))) = stream.next() else {
        return Ok(None);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(
                "when using JSON array syntax, arrays must be comprised of strings only"
                    .to_string(),
            ),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Leading `--flag[=value]` words (quotes and backslashes resolved), then the rest.
/// `--` alone ends the flags.
fn extract_flags(line: &str) -> (String, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut p = 0;
    loop {
        while p < chars.len() && chars[p].1.is_whitespace() {
            p += 1;
        }
        if p >= chars.len() {
            return (String::new(), words);
        }
        let starts_flag = chars[p].1 == '-' && chars.get(p + 1).is_some_and(|c| c.1 == '-');
        if !starts_flag {
            return (line[chars[p].0..].to_string(), words);
        }
        let mut word = String::new();
        let mut blank_ok = false;
        let mut quote: Option<char> = None;
        while p < chars.len() {
            let c = chars[p].1;
            match quote {
                None if c.is_whitespace() => break,
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    blank_ok = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some(&(_, n)) = chars.get(p + 1) {
                        word.push(n);
                        p += 1;
                    }
                }
                _ => word.push(c),
            }
            p += 1;
        }
        if word == "--" {
            let rest = chars.get(p).map_or("", |&(b, _)| &line[b..]);
            return (rest.to_string(), words);
        }
        if blank_ok || !word.is_empty() {
            words.push(word);
        }
    }
}

fn can_contain_heredoc(ins: &Instruction) -> bool {
    if ins.exec_form.is_some() {
        return false;
    }
    if HEREDOC_KEYWORDS.contains(&ins.keyword.as_str()) {
        return true;
    }
    if ins.keyword == "ONBUILD" {
        let sub = ins.args.split_whitespace().next().unwrap_or("");
        return HEREDOC_KEYWORDS.contains(&sub.to_ascii_uppercase().as_str());
    }
    false
}

/// Splits a line into shell words keeping quotes and escapes raw (BuildKit lexes with
/// RawQuotes/RawEscapes to find heredoc markers).
pub(super) fn raw_shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                word.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == '\\' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// Recognises a heredoc marker word (`<<EOF`, `<<-"EOF"`, `3<<EOF`).
pub(super) fn parse_heredoc_word(word: &str) -> Option<Heredoc> {
    let caps = heredoc_re().captures(word)?;
    let rest = &caps[3];
    if rest.is_empty() {
        return None;
    }
    let mut name = String::new();
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                quoted = true;
            }
            (Some(q), _) if c == q => quote = None,
            (Some('\''), _) => name.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    name.push(n);
                }
            }
            _ => name.push(c),
        }
    }
    if name.is_empty() {
        return None;
    }
    Some(Heredoc {
        name,
        chomp: &caps[2] == "-",
        expand: !quoted,
        fd: caps[1].parse().unwrap_or(0),
        body: String::new(),
    })
}

/// The heredocs a line opens. `<< EOF` and `<<- EOF` (a space after the operator) count as
/// `<<EOF`, as BuildKit reads them since v0.22 (moby/buildkit#5817).
fn heredocs_from_line(line: &str) -> Vec<Heredoc> {
    let words = raw_shell_words(line);
    let mut docs = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let bare_operator = w
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .strip_prefix("<<")
            .is_some_and(|rest| rest.is_empty() || rest == "-");
        if bare_operator && i + 1 < words.len() {
            if let Some(doc) = parse_heredoc_word(&format!("{w}{}", words[i + 1])) {
                docs.push(doc);
                i += 2;
                continue;
            }
        }
        docs.extend(parse_heredoc_word(w));
        i += 1;
    }
    docs
}
