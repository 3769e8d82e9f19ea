//! Compose interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:+alt}`, `${VAR+alt}`, `${VAR:?message}`, `${VAR?message}`, and `$$` for a dollar.

/// Expands `s`, looking variables up with `lookup`.
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = matching_brace(r).ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            out.push_str(&expand(&r[..end], lookup)?);
            rest = &r[end + 1..];
        } else {
            let len = name_len(rest);
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&lookup(&rest[..len]).unwrap_or_default());
            }
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn name_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn expand(expr: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, op) = expr.split_at(name_len(expr));
    if name.is_empty() {
        return Err(format!("invalid interpolation format for `${{{expr}}}`"));
    }
    let value = lookup(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let pick = |word: &str| interpolate(word, lookup);
    let missing = |msg: &str| {
        Err(if msg.is_empty() {
            format!("required variable {name} is missing a value")
        } else {
            format!("required variable {name} is missing a value: {msg}")
        })
    };
    match op {
        "" => Ok(value.unwrap_or_default()),
        _ if op.starts_with(":-") => match value {
            Some(v) if set_nonempty => Ok(v),
            _ => pick(&op[2..]),
        },
        _ if op.starts_with('-') => match value {
            Some(v) => Ok(v),
            None => pick(&op[1..]),
        },
        _ if op.starts_with(":+") => {
            if set_nonempty {
                pick(&op[2..])
            } else {
                Ok(String::new())
            }
        }
        _ if op.starts_with('+') => match value {
            Some(_) => pick(&op[1..]),
            None => Ok(String::new()),
        },
        _ if op.starts_with(":?") => match value {
            Some(v) if set_nonempty => Ok(v),
            _ => missing(&op[2..]),
        },
        _ if op.starts_with('?') => match value {
            Some(v) => Ok(v),
            None => missing(&op[1..]),
        },
        _ => Err(format!("invalid interpolation format for `${{{expr}}}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn with(pairs: &[(&str, &str)], s: &str) -> Result<String, String> {
        let vars: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        interpolate(s, &|k| vars.get(k).cloned())
    }

    #[test]
    fn interpolation_follows_compose() {
        let v = [("SET", "v"), ("EMPTY", "")];
        assert_eq!(with(&v, "a$SET-${SET}").unwrap(), "av-v");
        assert_eq!(
            with(&v, "${EMPTY:-d} ${EMPTY-d} ${NOPE-d}").unwrap(),
            "d  d"
        );
        assert_eq!(with(&v, "${SET:+alt}${NOPE:+alt}").unwrap(), "alt");
        assert_eq!(with(&v, "$$SET").unwrap(), "$SET");
        assert_eq!(with(&v, "${NOPE:-${SET}}").unwrap(), "v");
        assert!(with(&v, "${NOPE:?need it}")
            .unwrap_err()
            .contains("need it"));
    }
}
