//! TOML errors turned into one line that names the field and the value
//! (`model.threads = -1: invalid value: ..., expected usize`), with input
//! echoed cut short. Boot only; allocates (error messages).

use super::Config;

/// Whether an error message starts with `field = ` or `field: ` (our own
/// field errors do: `source.pace = "fst": expected one of fast, realtime`,
/// `output[1]: unknown field ...`).
pub(super) fn names_a_field(msg: &str) -> bool {
    let field = |f: &str| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.[]".contains(c))
    };
    msg.split_once(" = ").is_some_and(|(f, _)| field(f))
        || msg.split_once(": ").is_some_and(|(f, _)| field(f))
}

/// A TOML error as one line that names the field: our own field errors
/// already do; for toml's, the key is found from the error's position
/// (`model.threads = -1: invalid value: ..., expected usize (line 5)`),
/// or, where serde lost the position (fields of tagged tables such as
/// `[source]`), by elimination: the key whose removal changes the error.
/// Input echoed is cut to [`crate::input::MAX_ECHO_CHARS`].
pub(super) fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    use crate::input::clip;
    let msg = e.message();
    if names_a_field(msg) {
        return clip_long(msg);
    }
    let start = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line_no = text
        .as_bytes()
        .iter()
        .take(start)
        .filter(|&&b| b == b'\n')
        .count();
    let mut section = String::new();
    for l in text.lines().take(line_no + 1) {
        if let Some(h) = table_header(l) {
            section = h;
        }
    }
    let line = text.lines().nth(line_no).unwrap_or("");
    if table_header(line).is_none() {
        if let Some((key, value)) = line.split_once('=') {
            let key = key.trim().trim_matches('"');
            let field = if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            return format!(
                "{} = {}: {} (line {})",
                clip(&field),
                clip(value.trim()),
                clip_long(msg),
                line_no + 1
            );
        }
    }
    if let Some((field, value)) = find_field_by_elimination(text, &section, msg) {
        return format!("{field} = {}: {}", clip(&value), clip_long(msg));
    }
    format!("line {}: {}: `{}`", line_no + 1, clip_long(msg), clip(line))
}

/// `[a.b]` or `[[a]]` → `a.b` / `a`; None for other lines.
fn table_header(line: &str) -> Option<String> {
    let l = line.trim();
    let l = l.split('#').next().unwrap_or("").trim();
    let inner = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"));
    let inner = inner.or_else(|| l.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
    Some(inner.trim().to_string())
}

/// A message of ours or toml's cut to a few lines' worth: long enough for
/// every accepted value of an enum, short enough that a megabyte of input
/// is never echoed.
fn clip_long(msg: &str) -> String {
    let mut m: String = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if m.chars().count() > 4 * crate::input::MAX_ECHO_CHARS {
        m = m.chars().take(4 * crate::input::MAX_ECHO_CHARS).collect();
        m.push('…');
    }
    m
}

/// Most keys tried by [`find_field_by_elimination`] (real tables hold a
/// dozen; the text is at most 1 MiB anyway).
const MAX_ELIMINATION_KEYS: usize = 64;

/// The key of table `section` whose removal makes the error `msg` go away
/// (and is not the error of its own absence), with its value.
fn find_field_by_elimination(text: &str, section: &str, msg: &str) -> Option<(String, String)> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let sections: Vec<String> = if section.is_empty() {
        doc.keys().cloned().collect()
    } else {
        vec![section.to_string()]
    };
    for sec in sections {
        let Some(toml::Value::Table(t)) = doc.get(&sec) else {
            continue;
        };
        let found = culprit_key(t, msg, |t| {
            let mut d = doc.clone();
            d.insert(sec.clone(), toml::Value::Table(t));
            toml::Value::Table(d)
                .try_into::<Config>()
                .err()
                .map(|e| e.message().to_string())
        });
        if let Some((key, value)) = found {
            return Some((format!("{sec}.{key}"), value));
        }
    }
    None
}

/// The key of `t` whose removal makes `error_of` stop reporting `msg`
/// (and not report the key's own absence instead), with its value.
pub(super) fn culprit_key(
    t: &toml::Table,
    msg: &str,
    error_of: impl Fn(toml::Table) -> Option<String>,
) -> Option<(String, String)> {
    if t.len() > MAX_ELIMINATION_KEYS {
        return None;
    }
    for (key, value) in t {
        let mut without = t.clone();
        without.remove(key);
        let gone = match error_of(without) {
            None => true,
            Some(m) => m != msg && !m.contains(&format!("`{key}`")),
        };
        if gone {
            return Some((key.clone(), value.to_string()));
        }
    }
    None
}
