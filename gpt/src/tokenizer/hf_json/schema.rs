//! Reading the JSON of `tokenizer.json`: typed field access with errors that
//! say which part of the file is wrong.
//!
//! The file is one object with a part per pipeline stage:
//!
//! ```text
//! { "version": "1.0", "truncation": null, "padding": null,
//!   "added_tokens":   [ {"id", "content", "special", "lstrip", "rstrip", "single_word", "normalized"}, .. ],
//!   "normalizer":     {"type": "NFC" | "Sequence" | "Prepend" | "Replace" | ..} or null,
//!   "pre_tokenizer":  {"type": "ByteLevel" | "Split" | "Metaspace" | "Sequence" | ..} or null,
//!   "model":          {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ..] or [["a", "b"], ..], ..},
//!   "post_processor": {"type": "TemplateProcessing" | "ByteLevel" | "Sequence"} or null,
//!   "decoder":        {"type": "ByteLevel" | "Metaspace" | "Sequence" | ..} or null }
//! ```
//!
//! Each stage is an object tagged by `"type"`. The stages parse themselves
//! from a [`Node`]; a problem becomes a `String` naming the stage and field
//! (`pre_tokenizer.pretokenizers[0].behavior: unknown value "Merged"`), which
//! the loader prefixes with the file name.

use serde_json::{Map, Value};

/// One JSON object of the file, with the path that leads to it.
#[derive(Clone, Copy)]
pub(super) struct Node<'a> {
    pub path: &'a str,
    pub map: &'a Map<String, Value>,
}

impl<'a> Node<'a> {
    /// `value` as an object, or an error naming `path`.
    pub fn of(path: &'a str, value: &'a Value) -> Result<Node<'a>, String> {
        match value {
            Value::Object(map) => Ok(Node { path, map }),
            other => Err(format!("{path}: expected an object, found {}", kind(other))),
        }
    }

    /// The `"type"` tag of a pipeline stage.
    pub fn type_name(&self) -> Result<&'a str, String> {
        self.str("type")
    }

    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn required(&self, field: &str) -> Result<&'a Value, String> {
        self.get(field).ok_or_else(|| format!("{}.{field}: missing", self.path))
    }

    pub fn str(&self, field: &str) -> Result<&'a str, String> {
        match self.required(field)? {
            Value::String(s) => Ok(s),
            other => Err(format!("{}.{field}: expected a string, found {}", self.path, kind(other))),
        }
    }

    pub fn opt_str(&self, field: &str) -> Result<Option<&'a str>, String> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.str(field).map(Some),
        }
    }

    /// A boolean that defaults to `default` when absent.
    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool, String> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("{}.{field}: expected true or false, found {}", self.path, kind(other))),
        }
    }

    pub fn usize_or(&self, field: &str, default: usize) -> Result<usize, String> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("{}.{field}: expected a count, found {}", self.path, kind(v))),
        }
    }

    pub fn array(&self, field: &str) -> Result<&'a Vec<Value>, String> {
        match self.required(field)? {
            Value::Array(items) => Ok(items),
            other => Err(format!("{}.{field}: expected a list, found {}", self.path, kind(other))),
        }
    }

    /// A single character field (`Metaspace`'s `replacement`, `Strip`'s `content`).
    pub fn char(&self, field: &str) -> Result<char, String> {
        let s = self.str(field)?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(format!("{}.{field}: expected one character, found {s:?}", self.path)),
        }
    }

    /// An error about `field` of this node.
    pub fn fail(&self, field: &str, message: impl std::fmt::Display) -> String {
        format!("{}.{field}: {message}", self.path)
    }

    /// The error for a `"type"` this reader does not implement.
    pub fn unsupported(&self, what: &str) -> String {
        let name = self.type_name().unwrap_or("?");
        format!("{}: {what} type {name:?} is not supported", self.path)
    }
}

/// A `pattern` field: `{"String": s}` (taken literally) or `{"Regex": r}`.
#[derive(Clone, Debug)]
pub(super) enum PatternSpec {
    Literal(String),
    Regex(String),
}

impl PatternSpec {
    pub fn read(node: &Node, field: &str) -> Result<PatternSpec, String> {
        let inner = Node::of(node.path, node.required(field)?)?;
        if let Some(s) = inner.opt_str("String")? {
            return Ok(PatternSpec::Literal(s.to_string()));
        }
        if let Some(r) = inner.opt_str("Regex")? {
            return Ok(PatternSpec::Regex(r.to_string()));
        }
        Err(node.fail(field, "expected {\"String\": ..} or {\"Regex\": ..}"))
    }

    /// The compiled pattern. A literal is escaped, as `tokenizers` does.
    pub fn compile(&self, node: &Node, field: &str) -> Result<fancy_regex::Regex, String> {
        let source = match self {
            PatternSpec::Literal(s) => fancy_regex::escape(s).into_owned(),
            PatternSpec::Regex(r) => r.clone(),
        };
        fancy_regex::Regex::new(&source).map_err(|e| node.fail(field, format!("bad regular expression: {e}")))
    }
}

/// A word for the JSON kind of `v`, for messages.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Every match of `regex` in `text` as `(start, end, is_match)` spans that
/// cover the text, as `tokenizers`' `Pattern::find_matches` lays them out.
pub(super) fn find_matches(regex: &fancy_regex::Regex, text: &str) -> Vec<(usize, usize, bool)> {
    if text.is_empty() {
        return vec![(0, 0, false)];
    }
    let mut spans = Vec::new();
    let mut prev = 0;
    for m in regex.find_iter(text) {
        // A pattern that backtracks past its limit counts as no further match.
        let Ok(m) = m else { break };
        if prev != m.start() {
            spans.push((prev, m.start(), false));
        }
        spans.push((m.start(), m.end(), true));
        prev = m.end();
    }
    if prev != text.len() {
        spans.push((prev, text.len(), false));
    }
    spans
}
