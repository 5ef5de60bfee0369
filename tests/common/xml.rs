//! The SVG pictures the inspect commands write, parsed by `roxmltree`
//! (which refuses anything that is not well-formed XML): their elements in
//! document order, for counting.

use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Element {
    pub name: String,
    pub attributes: BTreeMap<String, String>,
    /// The text directly after the start tag, entities decoded.
    pub text: String,
}

/// Every element of `svg`, in document order; panics unless it is well-formed.
pub fn parse(svg: &str) -> Vec<Element> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}"));
    doc.descendants()
        .filter(|node| node.is_element())
        .map(|node| Element {
            name: node.tag_name().name().to_string(),
            attributes: node.attributes().map(|a| (a.name().to_string(), a.value().to_string())).collect(),
            text: node.text().unwrap_or("").to_string(),
        })
        .collect()
}
