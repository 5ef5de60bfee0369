//! The word lists the story generator draws from.
//!
//! Kept apart from the grammar in `stories.rs` so either can be read alone.
//! Every list is small and concrete on purpose: a tiny model can learn which
//! objects go with which problems, and its samples show whether it did.

/// Names that take "she".
pub const SHE_NAMES: &[&str] = &[
    "Lily", "Mia", "Sue", "Anna", "Emma", "Lucy", "Zoe", "Ella", "Rosa", "Kim", "Nina", "Amy", "Sara", "Ruby", "Jane",
    "Molly", "Daisy", "Ivy",
];

/// Names that take "he".
pub const HE_NAMES: &[&str] = &[
    "Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Tim", "Finn", "Joe", "Bob", "Oscar", "Ned", "Paul", "Luke", "Dan",
    "Hugo", "Eli", "Otto",
];

/// What a character is, besides a girl or a boy.
pub const ANIMALS: &[&str] = &[
    "cat", "dog", "rabbit", "bear", "fox", "mouse", "duck", "frog", "owl", "pig", "lion", "turtle", "squirrel",
    "hedgehog", "goat", "puppy",
];

pub const TRAITS: &[&str] =
    &["little", "kind", "happy", "brave", "shy", "curious", "clever", "small", "friendly", "silly", "quiet", "busy"];

pub const OPENINGS: &[&str] =
    &["Once upon a time", "One sunny day", "One morning", "Long ago", "One rainy afternoon", "One windy day"];

pub const HOMES: &[&str] = &[
    "a small house",
    "a cozy cottage",
    "a little hole under a tree",
    "a red barn",
    "a blue boat",
    "a tall tower",
    "a tiny flat",
    "a yellow tent",
];

pub const NEAR: &[&str] = &[
    "near the sea",
    "by the woods",
    "at the end of the street",
    "on a quiet hill",
    "in the middle of town",
    "next to a big lake",
];

pub const PLACES: &[&str] = &[
    "the park",
    "the forest",
    "the beach",
    "the garden",
    "the farm",
    "the big hill",
    "the river",
    "the market",
    "the school",
    "the library",
    "the old barn",
    "the pond",
    "the meadow",
    "the town square",
    "the bakery",
];

pub const COLORS: &[&str] =
    &["red", "blue", "green", "yellow", "shiny", "big", "soft", "old", "new", "purple", "striped"];

pub const OBJECTS: &[&str] = &[
    "ball",
    "kite",
    "hat",
    "box",
    "book",
    "drum",
    "shell",
    "flower",
    "balloon",
    "key",
    "boat",
    "blanket",
    "cup",
    "bell",
    "map",
    "teddy bear",
    "scarf",
    "crown",
    "whistle",
    "basket",
];

/// Things to do somewhere: "went to the park to ...".
pub const ACTIVITIES: &[&str] = &[
    "play",
    "look for shells",
    "fly a kite",
    "pick apples",
    "read a book",
    "see the ducks",
    "buy some bread",
    "sing songs",
    "build a sandcastle",
    "find a treasure",
    "watch the clouds",
    "play hide and seek",
];

/// What goes wrong with the object, and how friends fix it:
/// `(problem, idea, what they did)`.
pub const TROUBLES: &[(&str, &str, &str)] = &[
    ("fell into the water", "use a long stick to pull it out", "used a long stick and pulled it out of the water"),
    ("got stuck up in a tall tree", "shake the branch", "shook the branch until it fell down"),
    ("was blown away by the wind", "run after it", "ran after it as fast as they could and caught it"),
    ("broke into two pieces", "glue it back together", "glued the pieces back together"),
    ("rolled down the hill", "run down the hill", "ran down the hill and found it at the bottom"),
    ("was taken by a big dog", "ask the dog nicely", "asked the dog nicely, and the dog gave it back"),
    ("was lost in the tall grass", "look under every leaf", "looked under every leaf until they found it"),
    ("fell down a deep hole", "use a rope", "tied a rope to a basket and lifted it out"),
];

pub const SAD: &[&str] = &["sad", "worried", "scared", "upset"];

pub const GLAD: &[&str] = &["happy", "glad", "proud", "excited"];

/// Food for the sharing stories.
pub const SNACKS: &[&str] =
    &["apple", "cookie", "sandwich", "banana", "piece of cake", "muffin", "carrot", "bowl of berries"];

/// Things seen on a walk.
pub const SIGHTS: &[&str] = &[
    "a bird singing in a tree",
    "a frog on a rock",
    "a boat on the water",
    "a rainbow in the sky",
    "a butterfly on a flower",
    "a snail on a leaf",
    "two ducks in the pond",
    "a big orange moon",
];

/// Endings that fit any plot; each plot also has its own moral.
pub const ENDINGS: &[&str] = &[
    "From that day on, {a} and {b} were best friends.",
    "They played together until the sun went down.",
    "That night, {a} went to bed with a big smile.",
    "{a} and {b} laughed and walked home together.",
];
