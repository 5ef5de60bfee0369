//! Instruction records: reading Alpaca-style JSON, and a built-in set.
//!
//! A record is `{"instruction": .., "input": .., "output": ..}`; `input`
//! may be empty or absent (the prompt then has no "### Input:" part).
//!
//! The built-in set is generated here, offline: small tasks whose answers
//! follow a rule, so a model that learned the rule answers prompts it never
//! saw: add two numbers, say what comes after a number, pluralise a noun,
//! reverse a word spelled letter by letter, repeat a word three times.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tensor::Generator;

use super::FinetuneError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instruction {
    pub instruction: String,
    #[serde(default)]
    pub input: String,
    pub output: String,
}

/// Reads a JSON array of records; a record without `instruction` or
/// `output` (or with a non-string value) is an error naming it.
pub fn read_instructions(path: &Path) -> Result<Vec<Instruction>, FinetuneError> {
    let text =
        crate::input::read_capped_string(path, crate::input::TEXT_LIMIT).map_err(|e| FinetuneError::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| FinetuneError::data(path, format!("not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(FinetuneError::data(path, "expected a JSON array of {instruction, input, output} records"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = |key: &str, required: bool| -> Result<String, FinetuneError> {
            match item.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Null) | None if !required => Ok(String::new()),
                None | Some(Value::Null) => Err(FinetuneError::data(path, format!("record {i} has no {key:?} key"))),
                Some(_) => Err(FinetuneError::data(path, format!("record {i}: {key:?} is not a string"))),
            }
        };
        out.push(Instruction {
            instruction: field("instruction", true)?,
            input: field("input", false)?,
            output: field("output", true)?,
        });
    }
    if out.is_empty() {
        return Err(FinetuneError::data(path, "no records"));
    }
    Ok(out)
}

const NOUNS: &[(&str, &str)] = &[
    ("cat", "cats"),
    ("dog", "dogs"),
    ("box", "boxes"),
    ("fox", "foxes"),
    ("bus", "buses"),
    ("city", "cities"),
    ("baby", "babies"),
    ("story", "stories"),
    ("bird", "birds"),
    ("tree", "trees"),
    ("dish", "dishes"),
    ("brush", "brushes"),
    ("church", "churches"),
    ("lady", "ladies"),
    ("berry", "berries"),
    ("apple", "apples"),
    ("flower", "flowers"),
    ("glass", "glasses"),
    ("bench", "benches"),
    ("pony", "ponies"),
    ("house", "houses"),
    ("river", "rivers"),
    ("boat", "boats"),
    ("party", "parties"),
    ("watch", "watches"),
    ("book", "books"),
    ("star", "stars"),
    ("penny", "pennies"),
    ("dress", "dresses"),
    ("farm", "farms"),
];

/// `n` generated records (seeded), spread over five tasks.
pub fn builtin_instructions(n: usize, seed: u64) -> Vec<Instruction> {
    let mut gen = Generator::seed(seed);
    let record = |instruction: &str, input: String, output: String| Instruction {
        instruction: instruction.to_string(),
        input,
        output,
    };
    (0..n)
        .map(|i| match i % 5 {
            0 => {
                let (a, b) = (gen.below(10), gen.below(10));
                record("Add the two numbers.", format!("{a} + {b}"), format!("{}", a + b))
            }
            1 => {
                let a = gen.below(99);
                record("What number comes after this one?", a.to_string(), (a + 1).to_string())
            }
            2 => {
                let (one, many) = gen.pick(NOUNS);
                record("Write the plural of the noun.", one.to_string(), many.to_string())
            }
            3 => {
                let (word, _) = gen.pick(NOUNS);
                let letters: Vec<String> = word.chars().map(String::from).collect();
                let reversed: Vec<String> = letters.iter().rev().cloned().collect();
                record("Reverse the letters.", letters.join(" "), reversed.join(" "))
            }
            _ => {
                let (word, _) = gen.pick(NOUNS);
                record("Repeat the word three times.", word.to_string(), [word; 3].join(" "))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_answers_follow_their_rules() {
        let data = builtin_instructions(50, 3);
        assert_eq!(data, builtin_instructions(50, 3));
        for r in &data {
            match r.instruction.as_str() {
                "Add the two numbers." => {
                    let (a, b) = r.input.split_once(" + ").unwrap();
                    assert_eq!(a.parse::<u32>().unwrap() + b.parse::<u32>().unwrap(), r.output.parse::<u32>().unwrap());
                }
                "Reverse the letters." => assert_eq!(r.input.chars().rev().collect::<String>(), r.output),
                "Repeat the word three times." => assert_eq!(r.output.split(' ').count(), 3),
                _ => assert!(!r.output.is_empty()),
            }
        }
    }

    #[test]
    fn missing_keys_are_named() {
        let path = std::env::temp_dir().join(format!("scratchgpt-instr-{}.json", std::process::id()));
        std::fs::write(&path, r#"[{"instruction": "a", "output": "b"}, {"instruction": "c", "input": "d"}]"#).unwrap();
        let err = read_instructions(&path).unwrap_err().to_string();
        assert!(err.ends_with("record 1 has no \"output\" key"), "{err}");
        std::fs::write(&path, r#"[{"instruction": "a", "output": "b"}]"#).unwrap();
        assert_eq!(read_instructions(&path).unwrap()[0].input, "");
    }
}
