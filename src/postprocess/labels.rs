//! Class names for the detector's class ids, loaded at boot. Each name is
//! also kept JSON-escaped so that the sink copies it without escaping per
//! frame.
//!
//! Accepted files (`#` starts a comment line in every form):
//! * one name per line; the line order gives the ids (`coco.names`);
//! * `ID: name` lines, e.g. `0: vehicle`, in any order, ids 0..n-1 once each;
//! * an Ultralytics dataset YAML: the `names:` key with an indented block of
//!   `ID: name` or `- name` lines, or an inline `[a, b]` list / `{0: a}` map;
//! * the ONNX metadata string Ultralytics writes: `{0: 'person', 1: 'car'}`.
//!
//! Names may be quoted ('...' or "..."). Loading allocates (boot only);
//! lookups never allocate. Read by the postprocess thread.

use super::PostprocessError;
use crate::text::json_escape;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    names: Vec<String>,
    /// `names[i]` JSON-escaped, without the surrounding quotes.
    json: Vec<String>,
}

impl Labels {
    /// Boot: reads and parses a label file; errors name the path and line.
    pub fn load(path: &Path) -> Result<Labels, PostprocessError> {
        let err = |msg: String| PostprocessError::Labels {
            path: path.display().to_string(),
            msg,
        };
        let text = crate::input::read_text(path).map_err(|e| err(format!("labels: {e}")))?;
        Labels::parse_text(&text, &path.display().to_string())
    }

    /// Boot: parses label text in any accepted form (a file's contents,
    /// the built-in labels, an ONNX metadata `names` string); `origin`
    /// names it in errors.
    pub fn parse_text(text: &str, origin: &str) -> Result<Labels, PostprocessError> {
        let err = |msg: String| PostprocessError::Labels {
            path: origin.to_string(),
            msg,
        };
        let names = parse(text).map_err(err)?;
        Labels::from_names(names).map_err(|e| match e {
            PostprocessError::Config(msg) => err(msg),
            other => other,
        })
    }

    /// Boot: labels from names in id order. Names must be non-empty.
    pub fn from_names(names: Vec<String>) -> Result<Labels, PostprocessError> {
        if names.is_empty() {
            return Err(PostprocessError::Config("no class names".into()));
        }
        if let Some(i) = names.iter().position(|n| n.is_empty()) {
            return Err(PostprocessError::Config(format!(
                "class {i} has an empty name"
            )));
        }
        let json = names.iter().map(|n| json_escape(n)).collect();
        Ok(Labels { names, json })
    }

    /// `class0`, `class1`, ... for a model without a label file.
    pub fn fallback(n: usize) -> Labels {
        let names: Vec<String> = (0..n).map(|i| format!("class{i}")).collect();
        Labels {
            json: names.clone(),
            names,
        }
    }

    /// Boot: the label count must equal the model's class count.
    pub fn check_classes(&self, model_classes: usize) -> Result<(), PostprocessError> {
        if self.names.len() == model_classes {
            Ok(())
        } else {
            Err(PostprocessError::Config(format!(
                "label file has {} class names but the model has {model_classes} classes",
                self.names.len()
            )))
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Frame path: never allocates.
    pub fn name(&self, class_id: u32) -> Option<&str> {
        self.names.get(class_id as usize).map(String::as_str)
    }

    /// The name JSON-escaped (no quotes). Frame path: never allocates.
    pub fn json_name(&self, class_id: u32) -> Option<&str> {
        self.json.get(class_id as usize).map(String::as_str)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Parses any of the accepted forms into names in id order.
fn parse(text: &str) -> Result<Vec<String>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return parse_inline(trimmed, 1);
    }
    // (1-based line number, line) without comments and blank lines.
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !is_blank_or_comment(l))
        .collect();
    if let Some(pos) = lines.iter().position(|(_, l)| yaml_key(l) == Some("names")) {
        return parse_yaml_names(&lines[pos..]);
    }
    if !lines.is_empty() && lines.iter().all(|(_, l)| split_index(l).is_some()) {
        let mut entries = Vec::new();
        for &(no, l) in &lines {
            if let Some((id, name)) = split_index(l) {
                entries.push((no, id, unquote(name)));
            }
        }
        return dense(entries);
    }
    parse_plain(text)
}

fn is_blank_or_comment(l: &str) -> bool {
    let t = l.trim();
    t.is_empty() || t.starts_with('#')
}

/// `key:` at column 0 of a YAML line, if it is one.
fn yaml_key(l: &str) -> Option<&str> {
    if l.starts_with(char::is_whitespace) {
        return None;
    }
    let (key, _) = l.split_once(':')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}

/// `ID: name` -> (ID, "name") when the line starts with a number and a colon.
fn split_index(l: &str) -> Option<(usize, &str)> {
    let (id, name) = l.split_once(':')?;
    let id = id.trim().trim_matches(|c| c == '\'' || c == '"');
    let id = id.parse().ok()?;
    Some((id, name.trim()))
}

/// Strips one pair of matching quotes and undoes their escapes.
fn unquote(s: &str) -> String {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'\'' || b[0] == b'"') {
        let inner = &s[1..s.len() - 1];
        if b[0] == b'\'' {
            // YAML doubles a quote; Python's repr escapes it.
            return inner
                .replace("''", "'")
                .replace("\\'", "'")
                .replace("\\\\", "\\");
        }
        return inner.replace("\\\"", "\"").replace("\\\\", "\\");
    }
    s.to_string()
}

/// Checks ids are 0..n-1 once each and returns the names in id order.
fn dense(mut entries: Vec<(usize, usize, String)>) -> Result<Vec<String>, String> {
    entries.sort_by_key(|e| e.1);
    let mut names = Vec::with_capacity(entries.len());
    for (expect, (line, id, name)) in entries.into_iter().enumerate() {
        if id != expect {
            let what = if id < expect { "repeats" } else { "skips to" };
            return Err(if line > 0 {
                format!("line {line}: class id {id} {what} (ids must be 0..n-1, each once; expected {expect})")
            } else {
                format!("class id {id} {what} (ids must be 0..n-1, each once; expected {expect})")
            });
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err("no class names found".into());
    }
    Ok(names)
}

/// One name per line; blank lines only at the end (they would shift ids).
fn parse_plain(text: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut blank_at = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('#') {
            continue;
        }
        if t.is_empty() {
            blank_at.get_or_insert(i + 1);
            continue;
        }
        if let Some(b) = blank_at {
            return Err(format!(
                "line {b} is empty (one class name per line; the line order gives the class ids)"
            ));
        }
        names.push(unquote(t));
    }
    if names.is_empty() {
        return Err("no class names found".into());
    }
    Ok(names)
}

/// `names:` followed by an inline list/map or an indented block.
fn parse_yaml_names(lines: &[(usize, &str)]) -> Result<Vec<String>, String> {
    let (line0, first) = lines[0];
    let rest = first.split_once(':').map(|(_, r)| r.trim()).unwrap_or("");
    if !rest.is_empty() {
        return parse_inline(rest, line0);
    }
    let mut entries = Vec::new();
    let mut listed = Vec::new();
    for &(no, l) in &lines[1..] {
        if !l.starts_with(char::is_whitespace) {
            break;
        }
        let t = l.trim();
        if let Some(item) = t.strip_prefix("- ").or_else(|| (t == "-").then_some("")) {
            listed.push(unquote(item));
        } else if let Some((id, name)) = split_index(t) {
            entries.push((no, id, unquote(name)));
        } else {
            return Err(format!(
                "line {no}: expected 'ID: name' or '- name' under names:, got '{t}'"
            ));
        }
    }
    match (entries.is_empty(), listed.is_empty()) {
        (false, true) => dense(entries),
        (true, false) => {
            if let Some(i) = listed.iter().position(String::is_empty) {
                return Err(format!("class {i} has an empty name"));
            }
            Ok(listed)
        }
        (true, true) => Err(format!("line {line0}: names: has no entries")),
        (false, false) => Err(format!(
            "line {line0}: names: mixes '- name' and 'ID: name' entries"
        )),
    }
}

/// `{0: 'a', 1: 'b'}` or `[a, 'b']` on one line (quotes may hide commas).
fn parse_inline(s: &str, line: usize) -> Result<Vec<String>, String> {
    let s = s.trim();
    let (map, body) = if let Some(b) = s.strip_prefix('{').and_then(|b| b.strip_suffix('}')) {
        (true, b)
    } else if let Some(b) = s.strip_prefix('[').and_then(|b| b.strip_suffix(']')) {
        (false, b)
    } else {
        return Err(format!(
            "line {line}: expected {{ID: name, ...}} or [name, ...], got '{s}'"
        ));
    };
    let mut items = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ',' => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    items.push(&body[start..]);
    let items: Vec<&str> = items
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if map {
        let mut entries = Vec::new();
        for it in items {
            let (id, name) = split_index(it)
                .ok_or_else(|| format!("line {line}: expected 'ID: name', got '{it}'"))?;
            entries.push((line, id, unquote(name)));
        }
        dense(entries)
    } else {
        if items.is_empty() {
            return Err(format!("line {line}: empty names list"));
        }
        Ok(items.into_iter().map(unquote).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(text: &str) -> Vec<String> {
        parse(text).unwrap()
    }

    #[test]
    fn plain_lines() {
        assert_eq!(names("car\npedestrian\n\n"), ["car", "pedestrian"]);
        assert_eq!(
            names("# comment\ntraffic light\r\nstop sign\n"),
            ["traffic light", "stop sign"]
        );
        let e = parse("car\n\npedestrian\n").unwrap_err();
        assert!(e.contains("line 2 is empty"), "{e}");
    }

    #[test]
    fn indexed_lines_any_order() {
        assert_eq!(
            names("1: pedestrian\n0: vehicle\n"),
            ["vehicle", "pedestrian"]
        );
        assert!(parse("0: a\n2: b\n")
            .unwrap_err()
            .contains("class id 2 skips to"));
        assert!(parse("0: a\n0: b\n")
            .unwrap_err()
            .contains("class id 0 repeats"));
    }

    #[test]
    fn ultralytics_dataset_yaml() {
        let y = "path: ../datasets/coco\ntrain: images/train\n# classes\nnames:\n  0: person\n  1: 'traffic light'\n  2: \"it's\"\nnc: 3\n";
        assert_eq!(names(y), ["person", "traffic light", "it's"]);
        assert_eq!(names("nc: 2\nnames:\n  - car\n  - 'bus'\n"), ["car", "bus"]);
        assert_eq!(names("names: ['a, b', c]\n"), ["a, b", "c"]);
        assert_eq!(names("names: {0: x, 1: y}\n"), ["x", "y"]);
        assert!(parse("names:\nnc: 1\n").unwrap_err().contains("no entries"));
    }

    #[test]
    fn onnx_metadata_dict() {
        assert_eq!(
            names("{0: 'person', 1: 'bicycle', 2: \"hair drier\", 3: 'it\\'s, odd'}"),
            ["person", "bicycle", "hair drier", "it's, odd"]
        );
    }

    #[test]
    fn load_errors_name_the_path() {
        let e = Labels::load(Path::new("/nonexistent/labels.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/labels.txt: labels: cannot open"),
            "{e}"
        );

        let dir = std::env::temp_dir().join(format!("perceptd-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.txt");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(b"0: a\n3: b\n")
            .unwrap();
        let e = Labels::load(&p).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: line 2: class id 3", p.display())),
            "{e}"
        );

        let good = dir.join("good.txt");
        std::fs::File::create(&good)
            .unwrap()
            .write_all(b"vehicle\n\"quoted\\\\\"\n")
            .unwrap();
        let l = Labels::load(&good).unwrap();
        assert_eq!(l.name(0), Some("vehicle"));
        assert_eq!(l.name(1), Some("quoted\\"));
        assert_eq!(l.json_name(1), Some("quoted\\\\"));
        assert_eq!(l.name(2), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fallback_and_class_check() {
        let l = Labels::fallback(3);
        assert_eq!(l.names(), ["class0", "class1", "class2"]);
        assert_eq!(l.json_name(2), Some("class2"));
        assert!(l.check_classes(3).is_ok());
        let e = l.check_classes(80).unwrap_err().to_string();
        assert_eq!(
            e,
            "label file has 3 class names but the model has 80 classes"
        );
    }
}
