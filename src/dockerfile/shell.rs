//! Word expansion as BuildKit's `shell.Lex.ProcessWord` does it for FROM images and
//! COPY/ADD sources: variables are replaced and quotes removed, because the image we
//! pull and the files we hash must be the ones BuildKit will use.

use std::collections::BTreeMap;

/// Expands `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
/// `${VAR+alt}` (and `${VAR:?msg}`/`${VAR?msg}`, which expand to the value or
/// nothing), the pattern forms `${VAR#p}`, `${VAR##p}`, `${VAR%p}`, `${VAR%%p}`,
/// `${VAR/p/r}` and `${VAR//p/r}` (shell globs, as BuildKit), removes quotes and resolves `\` escapes (`\$` is a literal dollar).
/// Unset variables expand to the empty string, as in BuildKit.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> String {
    substitute_with_escape(s, vars, '\\')
}

/// [`substitute`] with the Dockerfile's escape character (`# escape=\``).
pub fn substitute_with_escape(s: &str, vars: &BTreeMap<String, String>, escape: char) -> String {
    let mut lx = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        vars,
    };
    lx.word(false)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a BTreeMap<String, String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes a word; inside `${...:-word}` (`in_brace`) it stops before the `}`.
    fn word(&mut self, in_brace: bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if in_brace && c == '}' {
                break;
            }
            self.pos += 1;
            if c == self.escape {
                if let Some(n) = self.next() {
                    out.push(n);
                }
            } else if c == '\'' {
                while let Some(n) = self.next() {
                    if n == '\'' {
                        break;
                    }
                    out.push(n);
                }
            } else if c == '"' {
                self.double_quoted(&mut out);
            } else if c == '$' {
                self.dollar(&mut out);
            } else {
                out.push(c);
            }
        }
        out
    }

    fn double_quoted(&mut self, out: &mut String) {
        while let Some(c) = self.next() {
            if c == '"' {
                return;
            }
            if c == self.escape {
                match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                }
            } else if c == '$' {
                self.dollar(out);
            } else {
                out.push(c);
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    fn dollar(&mut self, out: &mut String) {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                let value = self.vars.get(&name);
                match self.next() {
                    Some('}') | None => out.push_str(value.map_or("", String::as_str)),
                    Some(':') => {
                        let op = self.next();
                        let word = self.word(true);
                        self.pos += 1; // the closing brace
                        let set = value.is_some_and(|v| !v.is_empty());
                        out.push_str(&apply(op, set, value, word));
                    }
                    Some(op @ ('-' | '+' | '?')) => {
                        let word = self.word(true);
                        self.pos += 1;
                        out.push_str(&apply(Some(op), value.is_some(), value, word));
                    }
                    Some(op @ ('#' | '%')) => {
                        let longest = self.peek() == Some(op);
                        if longest {
                            self.pos += 1;
                        }
                        let pattern = self.word(true);
                        self.pos += 1;
                        let v = value.map_or("", String::as_str);
                        out.push_str(&trim_match(v, &pattern, op == '#', longest));
                    }
                    Some('/') => {
                        let all = self.peek() == Some('/');
                        if all {
                            self.pos += 1;
                        }
                        let pattern = self.until_slash();
                        let replacement = self.word(true);
                        self.pos += 1;
                        let v = value.map_or("", String::as_str);
                        out.push_str(&replace_match(v, &pattern, &replacement, all));
                    }
                    Some(_) => {
                        let _ = self.word(true);
                        self.pos += 1;
                        out.push_str(value.map_or("", String::as_str));
                    }
                }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                out.push_str(self.vars.get(&name).map_or("", String::as_str));
            }
            _ => out.push('$'),
        }
    }
}

impl Lexer<'_> {
    /// The pattern of `${VAR/pattern/replacement}`: up to the `/` (consumed) or the `}`.
    fn until_slash(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '}' {
                break;
            }
            self.pos += 1;
            if c == '/' {
                break;
            }
            if c == self.escape {
                if let Some(n) = self.next() {
                    out.push(n);
                }
            } else if c == '$' {
                self.dollar(&mut out);
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// A shell glob (`*`, `?`, `[...]`) as an anchored-free regex.
fn glob_regex(pattern: &str) -> String {
    let mut re = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            '[' => {
                let mut class = String::from("[");
                if chars.peek() == Some(&'!') {
                    chars.next();
                    class.push('^');
                }
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == ']' {
                        closed = true;
                        break;
                    }
                    if n == '\\' || n == '[' {
                        class.push('\\');
                    }
                    class.push(n);
                }
                if closed {
                    class.push(']');
                    re.push_str(&class);
                } else {
                    re.push_str(&regex::escape(&class));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re
}

fn glob_matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{})$", glob_regex(pattern)))
        .map(|re| re.is_match(text))
        .unwrap_or(false)
}

/// `${VAR#p}`, `${VAR##p}` (prefix) and `${VAR%p}`, `${VAR%%p}` (suffix), shortest or
/// longest match removed.
fn trim_match(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let mut cuts: Vec<usize> = value.char_indices().map(|(i, _)| i).collect();
    cuts.push(value.len());
    if prefix {
        let mut order = cuts.clone();
        if longest {
            order.reverse();
        }
        for i in order {
            if glob_matches(pattern, &value[..i]) {
                return value[i..].to_string();
            }
        }
    } else {
        let mut order = cuts.clone();
        if !longest {
            order.reverse();
        }
        for i in order {
            if glob_matches(pattern, &value[i..]) {
                return value[..i].to_string();
            }
        }
    }
    value.to_string()
}

/// `${VAR/p/r}` (first match) and `${VAR//p/r}` (every match), longest matches.
fn replace_match(value: &str, pattern: &str, replacement: &str, all: bool) -> String {
    if pattern.is_empty() {
        return value.to_string();
    }
    let Ok(re) = regex::Regex::new(&glob_regex(pattern)) else {
        return value.to_string();
    };
    let rep = regex::NoExpand(replacement);
    if all {
        re.replace_all(value, rep).into_owned()
    } else {
        re.replace(value, rep).into_owned()
    }
}

fn apply(op: Option<char>, set: bool, value: Option<&String>, word: String) -> String {
    let value = value.cloned().unwrap_or_default();
    match op {
        Some('-') if set => value,
        Some('-') => word,
        Some('+') if set => word,
        Some('+') => String::new(),
        _ => value,
    }
}
