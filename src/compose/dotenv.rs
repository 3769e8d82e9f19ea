//! Compose's `.env` rules (compose-go's dotenv): `KEY=value` or `KEY: value`, an optional
//! `export `, comments after whitespace on unquoted values, single quotes literal, double
//! quotes decoding `\n \r \t \\ \" \$` and spanning lines, `${VAR}` expanded in unquoted and
//! double-quoted values, and a bare `KEY` taking the process environment's value.
//!
//! The process environment wins over the file, also for the expansions later lines make.

use std::collections::BTreeMap;

use super::interpolate::interpolate;

/// Parses `text`; `env` is the process environment. Returns the file's variables, in the
/// values compose gives them (the process environment's where it sets the same name).
pub fn parse(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    let line_of = |pos: usize| {
        bytes[..pos.min(bytes.len())]
            .iter()
            .filter(|c| **c == '\n')
            .count()
            + 1
    };
    loop {
        // Statement start: skip whitespace and comment lines.
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        if bytes[i] == '#' {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        if bytes[i..].starts_with(&['e', 'x', 'p', 'o', 'r', 't']) {
            let after = i + 6;
            if after < bytes.len() && matches!(bytes[after], ' ' | '\t') {
                i = after;
                while i < bytes.len() && matches!(bytes[i], ' ' | '\t') {
                    i += 1;
                }
            }
        }
        let key_start = i;
        let mut inherited = false;
        loop {
            if i >= bytes.len() {
                inherited = true;
                break;
            }
            let c = bytes[i];
            if c == '=' || c == ':' {
                break;
            }
            if c == '\n' {
                inherited = true;
                break;
            }
            if !(c.is_alphanumeric() || c == '_' || c == '.' || c == ' ' || c == '\t' || c == '\r')
            {
                return Err(format!(
                    "line {}: unexpected character `{c}` in variable name",
                    line_of(i)
                ));
            }
            i += 1;
        }
        let key: String = bytes[key_start..i]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() {
            return Err(format!(
                "line {}: a variable name is missing",
                line_of(start)
            ));
        }
        if key.contains([' ', '\t']) {
            return Err(format!(
                "line {}: key cannot contain a space",
                line_of(start)
            ));
        }
        if inherited {
            if let Some(v) = env(&key) {
                out.insert(key, v);
            }
            continue;
        }
        i += 1; // '=' or ':'
        while i < bytes.len() && matches!(bytes[i], ' ' | '\t' | '\r') {
            i += 1;
        }
        let lookup = |k: &str| env(k).or_else(|| out.get(k).cloned());
        let value = match bytes.get(i) {
            Some(&q @ ('"' | '\'')) => {
                let mut j = i + 1;
                while j < bytes.len() && !(bytes[j] == q && bytes[j - 1] != '\\') {
                    j += 1;
                }
                if j >= bytes.len() {
                    return Err(format!("line {}: unterminated quoted value", line_of(i)));
                }
                let raw: String = bytes[i + 1..j].iter().collect();
                i = j + 1;
                if q == '"' {
                    interpolate(&unescape(&raw), &lookup)
                        .map_err(|e| format!("line {}: {e}", line_of(start)))?
                } else {
                    raw
                }
            }
            _ => {
                let end = bytes[i..]
                    .iter()
                    .position(|c| *c == '\n')
                    .map_or(bytes.len(), |p| i + p);
                let line: String = bytes[i..end].iter().collect();
                i = end;
                let mut cut = line.len();
                let mut prev_space = true;
                for (p, c) in line.char_indices() {
                    if c == '#' && prev_space {
                        cut = p;
                        break;
                    }
                    prev_space = c.is_whitespace();
                }
                let value = line[..cut].trim_end();
                interpolate(value, &lookup).map_err(|e| format!("line {}: {e}", line_of(start)))?
            }
        };
        let value = env(&key).unwrap_or(value);
        out.insert(key, value);
    }
    Ok(out)
}

/// Double-quote escapes; `\$` stays a literal dollar through the expansion that follows.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_rules() {
        let text = "# c\nexport A=1\nA2=x#kept\nB=\"two\\nlines $A\" # c\nC='x $A'\nD=${A}y # comment\nE: yaml\nF\nG=\"multi\nline\"\n\n";
        let env = |k: &str| (k == "F").then(|| "fromenv".to_string());
        let v = parse(text, &env).unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["A2"], "x#kept");
        assert_eq!(v["B"], "two\nlines 1");
        assert_eq!(v["C"], "x $A");
        assert_eq!(v["D"], "1y");
        assert_eq!(v["E"], "yaml");
        assert_eq!(v["F"], "fromenv");
        assert_eq!(v["G"], "multi\nline");
        assert!(parse("A B=1\n", &|_| None).is_err());
        assert!(parse("A=\"open\n", &|_| None).is_err());
    }
}
