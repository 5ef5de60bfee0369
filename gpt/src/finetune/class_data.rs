//! Labelled texts for classification: reading them, and a built-in set.
//!
//! A data set is a list of (text, class index) plus the class names. Files
//! are either `label<TAB>text` per line (the SMS Spam Collection's layout,
//! no header), or a table with a header row (TSV, or CSV with quoted
//! fields) whose text and label columns are named.
//!
//! The built-in set is made here, no download: short generated sentences
//! about three topics (animals, food, weather) from templates whose filler
//! words are shared, so a classifier has to find the topic words.

use std::path::Path;

use tensor::Generator;

use super::FinetuneError;

#[derive(Clone, Debug, PartialEq)]
pub struct LabelledData {
    pub texts: Vec<String>,
    /// Indices into `classes`.
    pub labels: Vec<usize>,
    /// Class names, sorted.
    pub classes: Vec<String>,
}

impl LabelledData {
    /// Builds from (text, label name) pairs; needs at least two classes.
    pub fn from_pairs(pairs: Vec<(String, String)>, source: &Path) -> Result<Self, FinetuneError> {
        if pairs.is_empty() {
            return Err(FinetuneError::data(source, "no labelled examples"));
        }
        let mut classes: Vec<String> = pairs.iter().map(|(_, l)| l.clone()).collect();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(FinetuneError::data(
                source,
                format!("the label column has only one class ({:?}); classification needs at least two", classes[0]),
            ));
        }
        let labels = pairs.iter().map(|(_, l)| classes.binary_search(l).expect("listed")).collect();
        Ok(LabelledData { texts: pairs.into_iter().map(|(t, _)| t).collect(), labels, classes })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Examples per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes.len()];
        self.labels.iter().for_each(|&l| c[l] += 1);
        c
    }

    /// Undersamples every class to the size of the smallest (seeded), as
    /// the book balances spam and ham.
    pub fn balanced(&self, seed: u64) -> LabelledData {
        let smallest = self.counts().into_iter().min().unwrap_or(0);
        let mut gen = Generator::seed(seed);
        let mut keep = Vec::new();
        for class in 0..self.classes.len() {
            let mut idx: Vec<usize> = (0..self.len()).filter(|&i| self.labels[i] == class).collect();
            gen.shuffle(&mut idx);
            keep.extend(idx.into_iter().take(smallest));
        }
        keep.sort();
        LabelledData {
            texts: keep.iter().map(|&i| self.texts[i].clone()).collect(),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes.clone(),
        }
    }
}

/// Splits one CSV line into fields (double quotes group, `""` escapes).
fn csv_fields(line: &str, sep: char) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            c if c == sep && !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// Reads a labelled file. Without column names: `label<TAB>text` lines.
/// With them: a header row, tab-separated for `.tsv`, comma otherwise.
pub fn read_labelled(
    path: &Path,
    text_column: Option<&str>,
    label_column: Option<&str>,
) -> Result<LabelledData, FinetuneError> {
    let text =
        crate::input::read_capped_string(path, crate::input::TEXT_LIMIT).map_err(|e| FinetuneError::io(path, e))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut pairs = Vec::new();
    if text_column.is_none() && label_column.is_none() {
        for (n, line) in lines.enumerate() {
            let (label, body) = line.split_once('\t').ok_or_else(|| {
                FinetuneError::data(path, format!("line {} has no tab (expected label<TAB>text)", n + 1))
            })?;
            pairs.push((body.to_string(), label.trim().to_string()));
        }
        return LabelledData::from_pairs(pairs, path);
    }
    let sep = if path.extension().is_some_and(|e| e == "tsv") { '\t' } else { ',' };
    let header = csv_fields(lines.next().ok_or_else(|| FinetuneError::data(path, "the file is empty"))?, sep);
    let column = |name: &str| {
        header.iter().position(|h| h.trim() == name).ok_or_else(|| {
            FinetuneError::data(path, format!("no column {name:?} (the header has {})", header.join(", ")))
        })
    };
    let t = column(text_column.unwrap_or("text"))?;
    let l = column(label_column.unwrap_or("label"))?;
    for (n, line) in lines.enumerate() {
        let f = csv_fields(line, sep);
        if f.len() <= t.max(l) {
            return Err(FinetuneError::data(
                path,
                format!("row {} has {} fields, fewer than the header", n + 2, f.len()),
            ));
        }
        pairs.push((f[t].clone(), f[l].trim().to_string()));
    }
    LabelledData::from_pairs(pairs, path)
}

const ANIMALS: &[&str] =
    &["cat", "dog", "horse", "rabbit", "fox", "owl", "cow", "duck", "mouse", "sheep", "goat", "frog"];
const ANIMAL_DOING: &[&str] = &[
    "was sleeping under the tree",
    "ran across the field",
    "barked at the gate",
    "ate some grass",
    "chased its tail",
    "jumped over the fence",
    "hid in the barn",
];
const FOODS: &[&str] =
    &["soup", "bread", "cake", "pasta", "apple pie", "rice", "salad", "cheese", "pancakes", "curry", "pizza", "stew"];
const FOOD_DOING: &[&str] = &[
    "tasted sweet and warm",
    "was baked in the oven",
    "needed more salt",
    "was served for dinner",
    "smelled of garlic",
    "was cooked too long",
    "came with a spoon",
];
const WEATHER: &[&str] =
    &["rain", "snow", "wind", "fog", "storm", "sunshine", "thunder", "hail", "frost", "cloud", "heat", "drizzle"];
const WEATHER_DOING: &[&str] = &[
    "fell all afternoon",
    "came from the north",
    "covered the hills",
    "lasted until the evening",
    "was forecast for tomorrow",
    "cleared by noon",
    "kept everyone indoors",
];
const OPENERS: &[&str] = &["Yesterday", "This morning", "Last week", "On Sunday", "Today", "In the story", "At home"];
const CLOSERS: &[&str] = &["", " and we talked about it", " and nobody minded", " again", " as usual", " for a while"];

/// The built-in classes, in label order.
pub const BUILTIN_CLASSES: [&str; 3] = ["animals", "food", "weather"];

/// `n` generated sentences, evenly spread over [`BUILTIN_CLASSES`]
/// (seeded), e.g. "Last week the fox hid in the barn as usual." → animals.
pub fn builtin_classification(n: usize, seed: u64) -> LabelledData {
    let mut gen = Generator::seed(seed);
    let mut texts = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        let (nouns, doing) = [(ANIMALS, ANIMAL_DOING), (FOODS, FOOD_DOING), (WEATHER, WEATHER_DOING)][class];
        let noun = gen.pick(nouns);
        let the = if class == 2 && gen.chance(0.3) { "some" } else { "the" };
        texts.push(format!("{} {the} {noun} {}{}.", gen.pick(OPENERS), gen.pick(doing), gen.pick(CLOSERS)));
        labels.push(class);
    }
    LabelledData { texts, labels, classes: BUILTIN_CLASSES.iter().map(|s| s.to_string()).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tsv_and_csv_and_rejects_one_class() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-classdata-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tsv = dir.join("sms.tsv");
        std::fs::write(&tsv, "ham\thello there\nspam\tWIN a prize, call now\nham\tsee you\n").unwrap();
        let d = read_labelled(&tsv, None, None).unwrap();
        assert_eq!(d.classes, ["ham", "spam"]);
        assert_eq!(d.labels, [0, 1, 0]);
        assert_eq!(d.texts[1], "WIN a prize, call now");
        assert_eq!(d.counts(), [2, 1]);
        assert_eq!(d.balanced(1).counts(), [1, 1]);

        let csv = dir.join("reviews.csv");
        std::fs::write(&csv, "id,review,stars\n1,\"good, really \"\"good\"\"\",5\n2,bad,1\n").unwrap();
        let d = read_labelled(&csv, Some("review"), Some("stars")).unwrap();
        assert_eq!(d.texts, ["good, really \"good\"", "bad"]);
        assert_eq!(d.classes, ["1", "5"]);

        std::fs::write(&tsv, "ham\thello\nham\tbye\n").unwrap();
        let err = read_labelled(&tsv, None, None).unwrap_err().to_string();
        assert!(
            err.ends_with("the label column has only one class (\"ham\"); classification needs at least two"),
            "{err}"
        );
        let err = read_labelled(&csv, Some("body"), None).unwrap_err().to_string();
        assert!(err.contains("no column \"body\""), "{err}");
    }

    #[test]
    fn builtin_set_is_balanced_and_seeded() {
        let d = builtin_classification(300, 1);
        assert_eq!(d.counts(), [100, 100, 100]);
        assert_eq!(d, builtin_classification(300, 1));
        assert!(d.texts[0].split(' ').any(|w| ANIMALS.contains(&w)), "{}", d.texts[0]);
    }
}
