//! Post-processors: what wraps the model's ids when special tokens are asked for.
//!
//! `TemplateProcessing` spells the result as a template: Llama 3's single
//! template is `<|begin_of_text|> $A`, Llama 2's `<s> $A`. Encoding with
//! special tokens (`add_special_tokens=True` in `tokenizers`, the default
//! there) runs it; encoding without leaves the ids as the model made them.
//! The `ByteLevel` post-processor only adjusts character offsets, which we
//! do not produce, so it changes no ids. Only single sequences are encoded
//! here; the `pair` template is read past.

use super::schema::Node;

#[derive(Clone, Debug)]
pub(super) enum PostProcessor {
    /// The single-sequence template: each item is special-token ids, or the
    /// sequence itself (`None`).
    Template(Vec<Option<Vec<u32>>>),
    /// Changes offsets only.
    ByteLevel,
    Sequence(Vec<PostProcessor>),
}

impl PostProcessor {
    pub fn parse(node: Node) -> Result<PostProcessor, String> {
        Ok(match node.type_name()? {
            "ByteLevel" => PostProcessor::ByteLevel,
            "TemplateProcessing" => {
                let specials = Node::of(node.path, node.required("special_tokens")?)?;
                let mut items = Vec::new();
                for (i, item) in node.array("single")?.iter().enumerate() {
                    let path = format!("{}.single[{i}]", node.path);
                    let item = Node::of(&path, item)?;
                    if item.get("Sequence").is_some() {
                        items.push(None);
                    } else if let Some(special) = item.get("SpecialToken") {
                        let name = Node::of(&path, special)?.str("id")?;
                        let entry = specials
                            .get(name)
                            .ok_or_else(|| item.fail("SpecialToken", format!("{name:?} is not in special_tokens")))?;
                        let entry_path = format!("{}.special_tokens.{name}", node.path);
                        let ids = Node::of(&entry_path, entry)?.array("ids")?;
                        let ids = ids
                            .iter()
                            .map(|v| v.as_u64().filter(|&i| i <= u32::MAX as u64).map(|i| i as u32))
                            .collect::<Option<Vec<u32>>>()
                            .ok_or_else(|| format!("{entry_path}.ids: not a list of token ids"))?;
                        items.push(Some(ids));
                    } else {
                        return Err(format!("{path}: expected Sequence or SpecialToken"));
                    }
                }
                PostProcessor::Template(items)
            }
            "Sequence" => {
                let mut parts = Vec::new();
                for (i, item) in node.array("processors")?.iter().enumerate() {
                    let path = format!("{}.processors[{i}]", node.path);
                    parts.push(PostProcessor::parse(Node::of(&path, item)?)?);
                }
                PostProcessor::Sequence(parts)
            }
            _ => return Err(node.unsupported("post_processor")),
        })
    }

    /// Wraps `ids` as the template says.
    pub fn process(&self, ids: Vec<u32>) -> Vec<u32> {
        match self {
            PostProcessor::ByteLevel => ids,
            PostProcessor::Template(items) => {
                let extra: usize = items.iter().flatten().map(Vec::len).sum();
                let mut out = Vec::with_capacity(ids.len() + extra);
                for item in items {
                    match item {
                        Some(special) => out.extend_from_slice(special),
                        None => out.extend_from_slice(&ids),
                    }
                }
                out
            }
            PostProcessor::Sequence(parts) => parts.iter().fold(ids, |ids, part| part.process(ids)),
        }
    }

    /// Every id the template adds, for [`bos`](super::HfTokenizer::bos_id)
    /// lookups: `(ids before the sequence, ids after it)`.
    pub fn wrapping(&self) -> (Vec<u32>, Vec<u32>) {
        match self {
            PostProcessor::ByteLevel => (vec![], vec![]),
            PostProcessor::Template(items) => {
                let split = items.iter().position(Option::is_none).unwrap_or(items.len());
                let before = items[..split].iter().flatten().flatten().copied().collect();
                let after = items[split..].iter().flatten().flatten().copied().collect();
                (before, after)
            }
            PostProcessor::Sequence(parts) => {
                let (mut before, mut after) = (vec![], vec![]);
                for part in parts {
                    let (b, a) = part.wrapping();
                    before.extend(b);
                    after.extend(a);
                }
                (before, after)
            }
        }
    }
}
