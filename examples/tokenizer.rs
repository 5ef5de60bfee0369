//! Tokenizing text the way the book does with tiktoken: GPT-2's byte-level
//! BPE turns text into ids and back, splits unknown words into known pieces,
//! and handles `<|endoftext|>` as you tell it to.
//!
//! Run: `cargo run --release --example tokenizer`

use scratchgpt::gpt::tokenizer::{train_bpe, BpeTokenizer, CharTokenizer, SpecialTokens};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tokenizer = BpeTokenizer::gpt2();
    let text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.";

    // Allow the special token: it becomes its single id, 50256.
    let ids = tokenizer.encode(text, SpecialTokens::Allow)?;
    println!("{ids:?}");
    println!("{}\n", tokenizer.decode(&ids)?);

    // Each id stands for a byte string; "someunknownPlace" is not in the
    // vocabulary, so BPE builds it from smaller known pieces.
    for &id in &ids {
        let bytes = tokenizer.token_bytes(id).expect("an id from encode");
        println!("{id:>6}  {:?}", String::from_utf8_lossy(bytes));
    }

    // The special token treated as plain characters...
    let plain = tokenizer.encode("<|endoftext|>", SpecialTokens::AsText)?;
    println!("\n<|endoftext|> as text: {plain:?}");
    // ...or refused, as for untrusted input.
    if let Err(e) = tokenizer.encode(text, SpecialTokens::Reject) {
        println!("rejected: {e}");
    }

    // Unknown words: BPE never fails, it falls back to smaller pieces.
    let ids = tokenizer.encode_ordinary("Akwirw ier");
    let pieces: Vec<String> = ids.iter().map(|&id| tokenizer.decode(&[id]).unwrap()).collect();
    println!("\n\"Akwirw ier\" -> {ids:?} = {pieces:?}");

    // A vocabulary of our own: train BPE on a little text...
    let corpus = "the cat sat on the mat. the cat ate the rat. the rat sat on the cat. ".repeat(50);
    let small = train_bpe(&corpus, 300)?;
    let ids = small.encode_ordinary("the cat sat on the rat.");
    println!("\nour own BPE ({} tokens): {ids:?}", small.vocab_size());
    // ...or go down to single characters, as small character models do.
    let chars = CharTokenizer::from_text(&corpus);
    println!("character vocabulary ({} tokens): {:?}", chars.vocab_size(), chars.chars());
    println!("{:?}", chars.encode("the cat")?);
    Ok(())
}
