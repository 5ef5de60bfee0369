//! A built-in corpus: simple English stories made by a seeded generator.
//!
//! Training needs text, and a project that trains out of the box cannot
//! depend on a download. So we write our own, in the spirit of TinyStories:
//! short tales with a cast (a girl, a boy or an animal with a name and a
//! trait), places, objects, a small problem, dialogue and an ending. Each
//! story follows one of a few plots and fills its slots from the word lists in
//! `story_words.rs`, keeping pronouns and facts consistent within the story
//! ("Lily lost *her* kite... they *ran after it*").
//!
//! The structure is what makes it a useful test: a model that learned it
//! writes "said Tom." after a closing quote, keeps a name through a story and
//! pairs "got stuck up in a tall tree" with "shook the branch"; one that did
//! not writes word salad. The same seed always gives the same text, on every
//! machine (see [`Generator`]).

use super::story_words::*;
use tensor::Generator;

/// The seed of [`builtin_corpus`].
pub const DEFAULT_SEED: u64 = 20_241_122;

/// The built-in corpus: stories from [`DEFAULT_SEED`] until at least
/// `min_bytes` bytes, separated by blank lines.
pub fn builtin_corpus(min_bytes: usize) -> String {
    generate_stories(DEFAULT_SEED, min_bytes)
}

/// Stories from `seed`, one paragraph each, separated by a blank line, until
/// the text holds at least `min_bytes` bytes (always at least one story).
pub fn generate_stories(seed: u64, min_bytes: usize) -> String {
    let mut rng = Generator::seed(seed);
    let mut text = String::with_capacity(min_bytes + 2048);
    loop {
        text.push_str(&story(&mut rng));
        if text.len() >= min_bytes {
            return text;
        }
        text.push_str("\n\n");
    }
}

/// One character of a story.
struct Character {
    name: &'static str,
    /// "girl", "boy", or an animal.
    kind: &'static str,
    he: &'static str,
    him: &'static str,
    his: &'static str,
}

impl Character {
    fn new(rng: &mut Generator, avoid: Option<&str>) -> Character {
        let she = rng.chance(0.5);
        let names = if she { SHE_NAMES } else { HE_NAMES };
        let name = loop {
            let name = rng.pick(names);
            if Some(name) != avoid {
                break name;
            }
        };
        let kind = if rng.chance(0.4) {
            if she {
                "girl"
            } else {
                "boy"
            }
        } else {
            rng.pick(ANIMALS)
        };
        let (he, him, his) = if she { ("she", "her", "her") } else { ("he", "him", "his") };
        Character { name, kind, he, him, his }
    }

    /// "a brave little fox" / "an old owl".
    fn described(&self, trait_: &str) -> String {
        format!("{} {trait_} {}", article(trait_), self.kind)
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One story, chosen among the plots.
pub(crate) fn story(rng: &mut Generator) -> String {
    let a = Character::new(rng, None);
    let b = Character::new(rng, Some(a.name));
    let mut s = Vec::new();
    let opening = rng.pick(OPENINGS);
    let trait_ = rng.pick(TRAITS);
    s.push(format!("{opening}, there was {} named {}.", a.described(trait_), a.name));
    s.push(format!("{} lived in {} {}.", capitalize(a.he), rng.pick(HOMES), rng.pick(NEAR)));
    let moral = match rng.below(3) {
        0 => lost_object(rng, &a, &b, &mut s),
        1 => sharing(rng, &a, &b, &mut s),
        _ => walk(rng, &a, &b, &mut s),
    };
    let ending = if rng.chance(0.3) { moral } else { rng.pick(ENDINGS) };
    let ending = ending.replace("{a}", a.name).replace("{b}", b.name);
    s.push(ending);
    s.join(" ")
}

// Each plot appends its sentences and returns its moral.

/// The object goes wrong; the friend has an idea; together they fix it.
fn lost_object(rng: &mut Generator, a: &Character, b: &Character, s: &mut Vec<String>) -> &'static str {
    let color = rng.pick(COLORS);
    let object = rng.pick(OBJECTS);
    let (problem, idea, fix) = rng.pick(TROUBLES);
    let place = rng.pick(PLACES);
    s.push(format!("{} had {} {color} {object} that {} loved very much.", a.name, article(color), a.he));
    s.push(format!("One day, {} took the {object} to {place}.", a.name));
    s.push(format!("There, {} met {}, {}.", a.he, b.name, b.described(rng.pick(TRAITS))));
    s.push(format!("\"Hello, {}!\" said {}. \"Look at my {object}!\"", b.name, a.name));
    s.push(format!("But then, the {object} {problem}."));
    s.push(format!("\"Oh no! My {object}!\" cried {}. {} felt very {}.", a.name, capitalize(a.he), rng.pick(SAD)));
    s.push(format!("\"Don't worry,\" said {}. \"Let's {idea}.\"", b.name));
    s.push(format!("So {} and {} {fix}.", a.name, b.name));
    s.push(format!("{} hugged {} {object}. \"Thank you, {}!\" {} said.", a.name, a.his, b.name, a.he));
    s.push(format!("{} was very {}.", b.name, rng.pick(GLAD)));
    "{a} learned that it is good to ask a friend for help."
}

/// One has food, the other is hungry; sharing makes both glad.
fn sharing(rng: &mut Generator, a: &Character, b: &Character, s: &mut Vec<String>) -> &'static str {
    let snack = rng.pick(SNACKS);
    let place = rng.pick(PLACES);
    s.push(format!("One day, {} went to {place} with {} {snack} in {} bag.", a.name, article(snack), a.his));
    s.push(format!("At {place}, {} saw {}, {}, sitting all alone.", a.he, b.name, b.described(rng.pick(TRAITS))));
    s.push(format!("\"Why are you {}?\" asked {}.", rng.pick(SAD), a.name));
    s.push(format!("\"I am hungry,\" said {}. \"I have nothing to eat.\"", b.name));
    s.push(format!("{} looked at {} {snack}. {} wanted to eat it all.", a.name, a.his, capitalize(a.he)));
    s.push(format!("But {} thought for a moment and said, \"We can share it!\"", a.he));
    s.push(format!("{} broke the {snack} in two and gave half to {}.", a.name, b.name));
    s.push(format!("\"Thank you!\" said {}, and {} smiled at {}.", b.name, b.he, a.him));
    s.push(format!("Then they wanted to {} together, and {} felt {}.", rng.pick(ACTIVITIES), a.name, rng.pick(GLAD)));
    "{a} learned that sharing makes everyone happy."
}

/// A walk with a friend: things seen, a question, a surprise.
fn walk(rng: &mut Generator, a: &Character, b: &Character, s: &mut Vec<String>) -> &'static str {
    let place = rng.pick(PLACES);
    let activity = rng.pick(ACTIVITIES);
    s.push(format!("One day, {} went to see {} friend {}, {}.", a.name, a.his, b.name, b.described(rng.pick(TRAITS))));
    s.push(format!("\"Do you want to {activity} at {place}?\" asked {}.", a.name));
    s.push(format!("\"Yes, please!\" said {}.", b.name));
    let first = rng.pick(SIGHTS);
    let second = loop {
        let sight = rng.pick(SIGHTS);
        if sight != first {
            break sight;
        }
    };
    s.push(format!("On the way to {place}, they saw {first}."));
    s.push(format!("\"Look!\" said {}. \"It is so pretty.\"", b.name));
    s.push(format!("Then they saw {second}."));
    let color = rng.pick(COLORS);
    let object = rng.pick(OBJECTS);
    s.push(format!("At {place}, {} found {} {color} {object} on the ground.", a.name, article(color)));
    s.push(format!(
        "\"Is it yours?\" {} asked {}. \"No,\" said {}. \"Let's keep it safe for its owner.\"",
        a.he, b.name, b.name
    ));
    s.push(format!("So they stayed to {activity} until it was time to go home."));
    s.push(format!("{} gave the {object} to {} mom, and she said {} was very kind.", a.name, a.his, a.he));
    "{a} and {b} learned that it is right to give back what is not yours."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_text() {
        assert_eq!(generate_stories(7, 5_000), generate_stories(7, 5_000));
        assert_ne!(generate_stories(7, 5_000), generate_stories(8, 5_000));
        // Asking for more extends, never changes, what came before.
        let short = generate_stories(7, 2_000);
        assert!(generate_stories(7, 20_000).starts_with(&short));
    }

    #[test]
    fn reaches_the_requested_size_in_whole_stories() {
        let text = builtin_corpus(3_000_000);
        assert!(text.len() >= 3_000_000 && text.len() < 3_002_000, "{}", text.len());
        assert!(text.ends_with('.'), "{:?}", &text[text.len() - 40..]);
        let stories: Vec<&str> = text.split("\n\n").collect();
        assert!(stories.len() > 3_000, "{}", stories.len());
        assert!(stories.iter().all(|s| OPENINGS.iter().any(|o| s.starts_with(o)) && !s.contains('{')));
    }

    #[test]
    fn stories_read_as_english() {
        let text = generate_stories(1, 200_000);
        // Every plot shows up, and the grammar helpers did their job.
        for phrase in ["\"Oh no! My", "We can share it!", "\"Yes, please!\" said", "there was a"] {
            assert!(text.contains(phrase), "{phrase:?} missing");
        }
        assert!(!text.contains(" a a") && !text.contains(" a owl") && !text.contains(" a old"));
        assert!(text.is_ascii());
        // A tiny vocabulary: a small model can learn it.
        let mut words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).collect();
        words.sort_unstable();
        words.dedup();
        assert!(words.len() < 600, "{} distinct words", words.len());
    }
}
