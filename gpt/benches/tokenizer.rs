//! Tokenizer speed: our GPT-2 encoder beside tiktoken-rs on the same text,
//! GPT-2 read through the general `tokenizer.json` pipeline, and BPE training
//! time.
//!
//! Run with `cargo bench -p gpt --bench tokenizer`. The input is
//! tinyshakespeare from the shared data folder next to the repository; when
//! that is absent the bench says so and uses generated stories of the same
//! size instead, so it never fails for want of a download.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gpt::data::builtin_corpus;
use gpt::tokenizer::hf_json::tokenizer_json;
use gpt::tokenizer::{train_bpe, BpeTokenizer, HfTokenizer};

fn corpus() -> (String, &'static str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/tinyshakespeare.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) => (text, "tinyshakespeare"),
        Err(e) => {
            eprintln!(
                "skipping tinyshakespeare ({}: {e}); benchmarking on 1.1 MB of generated stories instead",
                path.display()
            );
            (builtin_corpus(1_115_394), "stories")
        }
    }
}

fn encode(c: &mut Criterion) {
    let (text, name) = corpus();
    let ours = BpeTokenizer::gpt2();
    let tiktoken = tiktoken_rs::r50k_base().expect("tiktoken's r50k_base loads");
    assert_eq!(ours.encode_ordinary(&text), tiktoken.encode_ordinary(&text), "the two encoders disagree");

    let mut group = c.benchmark_group(format!("encode_{name}"));
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    // Warm: the word cache already holds the corpus's words, as it does
    // after the first pages of any long text.
    group.bench_function("scratchgpt_warm_cache", |b| b.iter(|| ours.encode_ordinary(black_box(&text))));
    // Cold: a fresh tokenizer each time, so every distinct word is merged once.
    group.bench_function("scratchgpt_cold_cache", |b| {
        b.iter_batched(|| ours.clone(), |fresh| fresh.encode_ordinary(black_box(&text)), BatchSize::LargeInput)
    });
    group.bench_function("tiktoken_rs", |b| b.iter(|| tiktoken.encode_ordinary(black_box(&text))));
    // GPT-2's tokenizer.json through the general pipeline (string pieces,
    // stand-in characters, string-keyed vocabulary), not the fast path that
    // `AnyTokenizer::load` picks for this layout.
    let general = HfTokenizer::from_json(&tokenizer_json(&ours)).expect("our tokenizer.json reads back");
    assert_eq!(general.encode(&text, false), ours.encode_ordinary(&text), "tokenizer.json path disagrees");
    group.bench_function("tokenizer_json_general_warm_cache", |b| b.iter(|| general.encode(black_box(&text), false)));
    group.finish();
}

fn train(c: &mut Criterion) {
    let (text, name) = corpus();
    let mut group = c.benchmark_group(format!("train_bpe_{name}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("vocab_8192", |b| b.iter(|| train_bpe(black_box(&text), 8192).unwrap()));
    group.finish();
}

criterion_group!(benches, encode, train);
criterion_main!(benches);
