//! A small XML well-formedness check for the SVG pictures the inspect
//! commands write: tags nest and close, attributes are quoted, `&` only
//! starts an entity, `<` never appears in text or attribute values. Returns
//! the elements in document order, for counting.

use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Element {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The text directly after the start tag, entities decoded.
    pub text: String,
}

fn decode(raw: &str, what: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').unwrap_or_else(|| panic!("{what}: `&` without `;` in {raw:?}"));
        let entity = &rest[at + 1..at + end];
        out.push(match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => panic!("{what}: unknown entity &{entity}; in {raw:?}"),
        });
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    assert!(!out.chars().any(|c| c.is_control() && c != '\n' && c != '\t'), "{what}: a control character in {raw:?}");
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c))
}

/// The elements of `doc`, panicking with the reason if it is not well-formed.
pub fn parse(doc: &str) -> Vec<Element> {
    let mut rest = doc.trim_start();
    if rest.starts_with("<?xml") {
        rest = &rest[rest.find("?>").expect("the prolog closes") + 2..];
    }
    let (mut elements, mut open, mut roots) = (Vec::new(), Vec::<String>::new(), 0);
    loop {
        let at = rest.find('<');
        let text = &rest[..at.unwrap_or(rest.len())];
        assert!(!text.contains('>') || !open.is_empty(), "text outside the root: {text:?}");
        let decoded = decode(text, "text");
        if open.is_empty() {
            assert!(decoded.trim().is_empty(), "text outside the root: {text:?}");
        }
        let Some(at) = at else { break };
        rest = &rest[at + 1..];
        let end = rest.find('>').expect("a tag closes");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop().as_deref(), Some(name.trim()), "a closing tag </{name}> that does not match");
            continue;
        }
        assert!(!tag.contains('<'), "`<` inside a tag: {tag:?}");
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
        let name = &tag[..name_end];
        assert!(is_name(name), "a bad element name {name:?}");
        let mut attributes = BTreeMap::new();
        let mut attrs = tag[name_end..].trim();
        while !attrs.is_empty() {
            let eq = attrs.find('=').unwrap_or_else(|| panic!("an attribute without a value in <{name} {attrs}>"));
            let key = attrs[..eq].trim();
            assert!(is_name(key), "a bad attribute name {key:?}");
            let after = &attrs[eq + 1..];
            assert!(after.starts_with('"'), "an unquoted attribute {key} in <{name}>");
            let close = after[1..].find('"').expect("the attribute's quote closes") + 1;
            let value = decode(&after[1..close], "attribute");
            assert!(attributes.insert(key.to_string(), value).is_none(), "attribute {key} twice in <{name}>");
            attrs = after[close + 1..].trim_start();
        }
        if open.is_empty() {
            roots += 1;
        }
        let text_end = rest.find('<').unwrap_or(rest.len());
        elements.push(Element { name: name.to_string(), attributes, text: decode(&rest[..text_end], "text") });
        if !self_closing {
            open.push(name.to_string());
        }
    }
    assert!(open.is_empty(), "elements left open: {open:?}");
    assert_eq!(roots, 1, "one root element");
    elements
}
