//! The fuzz targets' inputs, run in every `cargo test`: each target (see
//! `fuzz/src/lib.rs`) on every file of its kept corpus (`fuzz/corpus/`)
//! and on a bounded number of seeded mutations of each (bytes flipped,
//! ranges cut, duplicated or set to boundary values), a few seconds per
//! target. The long runs are cargo-fuzz's (`fuzz/README.md`); this keeps
//! what they found fixed.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tensor::Generator;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(corpus_dir(target)).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    files.sort();
    files.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// A seeded generator gives the same mutations every run.
fn mutate(input: &[u8], rng: &mut Generator) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                out.drain(a.min(b)..a.max(b));
            }
            2 if len > 0 => {
                let (a, b) = (rng.below(len), rng.below(len));
                let piece = out[a.min(b)..a.max(b)].to_vec();
                let at = rng.below(len);
                out.splice(at..at, piece);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                out[i] = [0u8, 0xFF, 0x7F, 0x80, b'9', b'-', b'"'][rng.below(7)];
            }
            4 => out.truncate(rng.below(len + 1)),
            _ if len >= 8 => {
                // A large number where a length or size may sit.
                let i = rng.below(len - 7);
                out[i..i + 8].copy_from_slice(&(u64::MAX >> rng.below(40)).to_le_bytes());
            }
            _ => out.push(rng.below(256) as u8),
        }
    }
    out
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    for (target, run) in harness::TARGETS {
        let inputs = corpus(target);
        assert!(!inputs.is_empty(), "no corpus in {}", corpus_dir(target).display());
        for input in &inputs {
            run(input);
        }
        let started = Instant::now();
        let mut rng = Generator::seed(0x5EED ^ target.len() as u64);
        let mut tried = 0;
        while started.elapsed() < Duration::from_secs(3) && tried < 2000 {
            let input = &inputs[rng.below(inputs.len())];
            run(&mutate(input, &mut rng));
            tried += 1;
        }
        eprintln!("{target}: {} corpus inputs, {tried} mutations", inputs.len());
    }
}

/// Writes the harness's seed inputs into `fuzz/corpus/` (run by hand when
/// a format changes: `cargo test --test fuzz_corpus -- --ignored`).
#[test]
#[ignore = "writes the seed corpus"]
fn write_seed_corpus() {
    for (i, (target, bytes)) in harness::seeds().into_iter().enumerate() {
        std::fs::create_dir_all(corpus_dir(target)).unwrap();
        std::fs::write(corpus_dir(target).join(format!("seed-{i}")), bytes).unwrap();
    }
}
