//! Chat templates: how an instruction-tuned model wants a conversation
//! written out as one text before it is tokenized.
//!
//! A model folder carries its template as Jinja source, in
//! `chat_template.jinja` or in `tokenizer_config.json`'s `chat_template`
//! (a string, or a list of `{name, template}` of which `default` is used).
//! The template sees `messages` (a list of `{role, content}`),
//! `add_generation_prompt` (whether to end with the opening of the
//! assistant's turn), and the special tokens by name (`bos_token`,
//! `eos_token`, …), and renders to text such as
//! `<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n`.
//!
//! `transformers` renders templates with Jinja2 and a few additions, and a
//! model's template is written against exactly that; here `minijinja` plays
//! Jinja2's part with the same additions:
//!
//! - `trim_blocks` and `lstrip_blocks`: a block tag's line leaves no blank
//!   line or indentation behind;
//! - `raise_exception(message)`: the template refuses a conversation;
//! - `tojson` as Python's `json.dumps` writes (`", "` and `": "` between
//!   items, non-ASCII kept, nothing HTML-escaped; `indent`, `sort_keys`,
//!   `ensure_ascii`), not Jinja2's HTML-safe one;
//! - `strftime_now(format)`: today's date, for templates that state it
//!   (in UTC here);
//! - Python's string and dict methods (`.strip()`, `.split()`,
//!   `.startswith()`, `.items()`, …), through `minijinja-contrib`'s
//!   `pycompat`.

use std::path::Path;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, ErrorKind};
use serde::Serialize;

/// The template file `transformers` writes beside the tokenizer.
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";
/// Holds `chat_template` and the special tokens.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant` (templates may know others).
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message { role: role.into(), content: content.into() }
    }
}

/// A chat template with the special tokens it may name.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    /// `(name, text)`: `("bos_token", "<s>")`, …
    tokens: Vec<(String, String)>,
}

/// Why a template could not be read or rendered; one line.
#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("{}: {reason}", path.display())]
    File { path: std::path::PathBuf, reason: String },
    #[error("chat template: {0}")]
    Render(String),
}

impl ChatTemplate {
    /// A template from its Jinja source, with no special tokens yet.
    pub fn new(source: impl Into<String>) -> ChatTemplate {
        ChatTemplate { source: source.into(), tokens: Vec::new() }
    }

    /// Makes `name` (e.g. `bos_token`) render as `text`.
    pub fn with_token(mut self, name: impl Into<String>, text: impl Into<String>) -> ChatTemplate {
        let name = name.into();
        self.tokens.retain(|(n, _)| *n != name);
        self.tokens.push((name, text.into()));
        self
    }

    /// The text special token `name` (`eos_token`, …) renders as.
    pub fn token(&self, name: &str) -> Option<&str> {
        self.tokens.iter().find(|(n, _)| n == name).map(|(_, text)| text.as_str())
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The template of a model folder (`chat_template.jinja` first, as
    /// `transformers` reads it, else `tokenizer_config.json`'s), with the
    /// special tokens `tokenizer_config.json` names; `None` when the folder
    /// has no template.
    pub fn from_folder(dir: &Path) -> Result<Option<ChatTemplate>, ChatTemplateError> {
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let config: serde_json::Value = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| file_error(&config_path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(e) => return Err(file_error(&config_path, e)),
        };
        let jinja_path = dir.join(CHAT_TEMPLATE_FILE);
        let source = match std::fs::read_to_string(&jinja_path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => template_in_config(&config, &config_path)?,
            Err(e) => return Err(file_error(&jinja_path, e)),
        };
        let Some(source) = source else {
            return Ok(None);
        };
        let mut template = ChatTemplate::new(source);
        if let Some(fields) = config.as_object() {
            for (name, value) in fields {
                if let Some(text) = token_text(name, value) {
                    template = template.with_token(name.as_str(), text);
                }
            }
        }
        Ok(Some(template))
    }

    /// The conversation as the model's prompt text; with
    /// `add_generation_prompt`, ending where the assistant's reply starts.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ChatTemplateError> {
        let env = environment();
        let source = generation_tags_removed(&self.source);
        let template = env.template_from_str(&source).map_err(render_error)?;
        let mut context: Vec<(String, Value)> =
            self.tokens.iter().map(|(n, t)| (n.clone(), Value::from(t.as_str()))).collect();
        context.push(("messages".into(), Value::from_serialize(messages)));
        context.push(("add_generation_prompt".into(), Value::from(add_generation_prompt)));
        let context: Value = context.into_iter().collect();
        template.render(context).map_err(render_error)
    }
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> ChatTemplateError {
    ChatTemplateError::File { path: path.to_path_buf(), reason: reason.to_string() }
}

/// `chat_template` as a string, or the `default` entry (else the first) of a
/// list of `{name, template}`.
fn template_in_config(config: &serde_json::Value, path: &Path) -> Result<Option<String>, ChatTemplateError> {
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(source)) => Ok(Some(source.clone())),
        Some(serde_json::Value::Array(named)) => {
            let template_of = |entry: &serde_json::Value| entry.get("template")?.as_str().map(String::from);
            let default = named.iter().find(|e| e.get("name").and_then(|n| n.as_str()) == Some("default"));
            match default.or(named.first()).and_then(template_of) {
                Some(source) => Ok(Some(source)),
                None => Err(file_error(path, "chat_template is a list without a {name, template} entry")),
            }
        }
        Some(_) => Err(file_error(path, "chat_template is neither a string nor a list of {name, template}")),
    }
}

/// A special token's text: `"bos_token": "<s>"` or, as `transformers`
/// saves an `AddedToken`, `"bos_token": {"content": "<s>", …}`.
fn token_text(name: &str, value: &serde_json::Value) -> Option<String> {
    if !name.ends_with("_token") {
        return None;
    }
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(fields) => fields.get("content")?.as_str().map(String::from),
        _ => None,
    }
}

/// `{% generation %}…{% endgeneration %}` marks the assistant's text for
/// `transformers`' training masks and renders as its contents; minijinja
/// has no such tag, so it becomes `{% if true %}…{% endif %}`, keeping the
/// `-` whitespace controls as written.
fn generation_tags_removed(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (open, body, close) = split_whitespace_controls(inner);
        let replaced = match body {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replaced {
            Some(word) => out.push_str(&format!("{{%{open} {word} {close}%}}")),
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `"- generation -"` → `("-", "generation", "-")`.
fn split_whitespace_controls(inner: &str) -> (&str, &str, &str) {
    let open = if inner.starts_with(['-', '+']) { &inner[..1] } else { "" };
    let close = if inner.len() > open.len() && inner.ends_with(['-', '+']) { &inner[inner.len() - 1..] } else { "" };
    let body = inner[open.len()..inner.len() - close.len()].trim();
    (open, body, close)
}

/// A minijinja error as one line: its kind and message, and where in the
/// template (minijinja's `{:#}` would add a multi-line source excerpt).
fn render_error(e: minijinja::Error) -> ChatTemplateError {
    ChatTemplateError::Render(e.to_string().replace('\n', " "))
}

/// Jinja set up as `transformers` sets up Jinja2 for chat templates
/// (`loop_controls` is its `loopcontrols` extension: `break`, `continue`).
fn environment<'source>() -> Environment<'source> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |message: String| -> Result<Value, minijinja::Error> {
        Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
    });
    env.add_function("strftime_now", |format: String| strftime(&format, now_utc()));
    env.add_filter("tojson", tojson);
    env
}

/// Python's `json.dumps(value, ensure_ascii=False)` (and its `indent`,
/// `sort_keys`, `ensure_ascii` options), as `transformers`' `tojson`.
fn tojson(value: Value, options: Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = options.get("indent")?;
    let sort_keys: Option<bool> = options.get("sort_keys")?;
    let ensure_ascii: Option<bool> = options.get("ensure_ascii")?;
    options.assert_all_used()?;
    let style =
        JsonStyle { indent, sort_keys: sort_keys.unwrap_or(false), ensure_ascii: ensure_ascii.unwrap_or(false) };
    let mut out = String::new();
    write_json(&mut out, &value, &style, 0)?;
    Ok(Value::from_safe_string(out))
}

struct JsonStyle {
    indent: Option<usize>,
    sort_keys: bool,
    ensure_ascii: bool,
}

fn write_json(out: &mut String, value: &Value, style: &JsonStyle, depth: usize) -> Result<(), minijinja::Error> {
    // Between items: ", " on one line; with an indent, "," and a new line.
    let (separator, newline) = match style.indent {
        Some(width) => (",".to_string(), Some(width)),
        None => (", ".to_string(), None),
    };
    let open_line = |out: &mut String, depth: usize| {
        if let Some(width) = newline {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&value.to_string()),
        ValueKind::String => write_json_string(out, value.as_str().unwrap_or_default(), style.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&separator);
                }
                open_line(out, depth + 1);
                write_json(out, item, style, depth + 1)?;
            }
            open_line(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if style.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&separator);
                }
                open_line(out, depth + 1);
                write_json_string(out, &key.to_string(), style.ensure_ascii);
                out.push_str(": ");
                write_json(out, &value.get_item(key)?, style, depth + 1)?;
            }
            open_line(out, depth);
            out.push('}');
        }
        _ => write_json_string(out, &value.to_string(), style.ensure_ascii),
    }
    Ok(())
}

/// A JSON string as Python writes it: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`,
/// `\f`, other control characters as `\u00XX`; with `ensure_ascii`, every
/// non-ASCII character as `\uXXXX` (UTF-16, so a surrogate pair beyond
/// U+FFFF).
fn write_json_string(out: &mut String, text: &str, ensure_ascii: bool) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A moment in UTC, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Monday.
    weekday: u32,
}

fn now_utc() -> DateTime {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    date_time(seconds)
}

/// Seconds since 1970-01-01 UTC to a calendar date and time (the
/// proleptic Gregorian calendar; Howard Hinnant's `civil_from_days`).
fn date_time(seconds: i64) -> DateTime {
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    DateTime {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs / 60 % 60) as u32,
        second: (secs % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 3).rem_euclid(7) as u32,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// The `strftime` directives date-stating templates use: `%Y %y %m %d %-d
/// %e %B %b %A %a %H %M %S %%`; any other is kept as written.
fn strftime(format: &str, t: DateTime) -> String {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut directive = chars.next();
        let unpadded = directive == Some('-');
        if unpadded {
            directive = chars.next();
        }
        let two = |n: u32| if unpadded { n.to_string() } else { format!("{n:02}") };
        let month = MONTHS[(t.month - 1) as usize];
        let weekday = WEEKDAYS[t.weekday as usize];
        match directive {
            Some('Y') => out.push_str(&t.year.to_string()),
            Some('y') => out.push_str(&two(t.year.rem_euclid(100) as u32)),
            Some('m') => out.push_str(&two(t.month)),
            Some('d') => out.push_str(&two(t.day)),
            Some('e') => out.push_str(&format!("{:>2}", t.day)),
            Some('B') => out.push_str(month),
            Some('b') => out.push_str(&month[..3]),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('H') => out.push_str(&two(t.hour)),
            Some('M') => out.push_str(&two(t.minute)),
            Some('S') => out.push_str(&two(t.second)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if unpadded {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Templates in the styles open models ship, with what `transformers`
    /// renders for them (`scripts/make_chat_template_fixtures.py`).
    const FIXTURES: &str = include_str!("../../tests/fixtures/chat_templates.json");

    #[derive(serde::Deserialize)]
    struct Case {
        name: String,
        template: String,
        messages: Vec<Message>,
        add_generation_prompt: bool,
        bos_token: String,
        eos_token: String,
        expected: String,
    }

    #[test]
    fn renders_as_transformers_does() {
        let cases: Vec<Case> = serde_json::from_str(FIXTURES).unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let template = ChatTemplate::new(case.template)
                .with_token("bos_token", case.bos_token)
                .with_token("eos_token", case.eos_token);
            let text = template.render(&case.messages, case.add_generation_prompt).unwrap();
            assert_eq!(text, case.expected, "{}", case.name);
        }
    }

    fn fixture(name: &str) -> ChatTemplate {
        let cases: Vec<Case> = serde_json::from_str(FIXTURES).unwrap();
        let case = cases.into_iter().find(|c| c.name == name).unwrap();
        ChatTemplate::new(case.template).with_token("bos_token", "<s>").with_token("eos_token", "</s>")
    }

    #[test]
    fn a_template_that_refuses_a_conversation_is_a_one_line_error() {
        let system_first = [Message::new("system", "Be brief."), Message::new("user", "Hi")];
        let e = fixture("gemma").render(&system_first, true).unwrap_err().to_string();
        assert!(e.contains("System role not supported"), "{e}");
        let twice = [Message::new("user", "Hi"), Message::new("user", "Hi again")];
        let e = fixture("mistral").render(&twice, true).unwrap_err().to_string();
        assert!(e.contains("Conversation roles must alternate"), "{e}");
        let e = ChatTemplate::new("{% for m in messages %}").render(&twice, true).unwrap_err().to_string();
        assert!(e.starts_with("chat template: syntax error"), "{e}");
        for e in [e] {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }

    #[test]
    fn tojson_writes_as_python_json_dumps() {
        let render =
            |source: &str| ChatTemplate::new(source).render(&[Message::new("user", "é\"\\\n\u{1}😀")], false).unwrap();
        assert_eq!(render("{{ messages | tojson }}"), r#"[{"role": "user", "content": "é\"\\\n\u0001😀"}]"#);
        assert_eq!(
            render("{{ messages[0] | tojson(ensure_ascii=true, sort_keys=true) }}"),
            r#"{"content": "\u00e9\"\\\n\u0001\ud83d\ude00", "role": "user"}"#
        );
        assert_eq!(
            render("{{ {'a': [1, none, true]} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1,\n    null,\n    true\n  ]\n}"
        );
    }

    #[test]
    fn generation_marks_render_as_their_contents() {
        let source = "{% for m in messages %}{%- generation -%}\n {{ m.content }}\n{%- endgeneration %}|{% endfor %}";
        assert_eq!(
            generation_tags_removed(source),
            "{% for m in messages %}{%- if true -%}\n {{ m.content }}\n{%- endif %}|{% endfor %}"
        );
        let text = ChatTemplate::new(source).render(&[Message::new("assistant", "ok")], false).unwrap();
        assert_eq!(text, "ok|");
    }

    #[test]
    fn dates_are_the_calendar_ones() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = date_time(1_709_211_909);
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %a %A %b %B %y %-d %e %% %q", t),
            "2024-02-29 13:05:09 Thu Thursday Feb February 24 29 29 % %q"
        );
        assert_eq!(strftime("%d %b %Y", date_time(0)), "01 Jan 1970");
        assert_eq!(strftime("%-d %B %Y, %A", date_time(-86_400)), "31 December 1969, Wednesday");
        let today = ChatTemplate::new("{{ strftime_now('%Y') }}").render(&[], false).unwrap();
        assert!(today.parse::<u32>().is_ok_and(|y| y >= 2024), "{today}");
    }

    #[test]
    fn a_folder_template_comes_from_the_jinja_file_or_the_tokenizer_config() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-chat-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(ChatTemplate::from_folder(&dir).unwrap().is_none());
        let config = serde_json::json!({
            "bos_token": {"content": "<|begin|>", "lstrip": false},
            "eos_token": "<|end|>",
            "model_max_length": 8,
            "chat_template": [
                {"name": "tool_use", "template": "tools"},
                {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}
            ]
        });
        std::fs::write(dir.join(TOKENIZER_CONFIG_FILE), config.to_string()).unwrap();
        let hi = [Message::new("user", "hi")];
        let template = ChatTemplate::from_folder(&dir).unwrap().unwrap();
        assert_eq!(template.render(&hi, true).unwrap(), "<|begin|>hi<|end|>");
        std::fs::write(dir.join(CHAT_TEMPLATE_FILE), "[{{ messages[0].content }}]{{ eos_token }}").unwrap();
        assert_eq!(ChatTemplate::from_folder(&dir).unwrap().unwrap().render(&hi, true).unwrap(), "[hi]<|end|>");
        std::fs::remove_file(dir.join(CHAT_TEMPLATE_FILE)).unwrap();
        std::fs::write(dir.join(TOKENIZER_CONFIG_FILE), r#"{"chat_template": 3}"#).unwrap();
        let e = ChatTemplate::from_folder(&dir).unwrap_err().to_string();
        assert!(e.contains("tokenizer_config.json") && e.contains("neither a string"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
