//! The data pipeline end to end: files → cached ids → windows → batches, and
//! the errors bad input produces.

use std::path::{Path, PathBuf};

use gpt::data::{
    builtin_corpus, cache_paths, load_tokens, tokenize_file, train_val_split, CacheStatus, DataError, DataLoader,
    LoaderConfig, SlidingWindow,
};
use gpt::tokenizer::{AnyTokenizer, BpeTokenizer, CharTokenizer, SpecialTokens, TokenizerError};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn cache_is_reused_until_source_or_tokenizer_changes() {
    let dir = temp_dir("cache");
    let text = builtin_corpus(50_000);
    let source = write(&dir, "stories.txt", text.as_bytes());
    let gpt2 = AnyTokenizer::gpt2();
    let expected = BpeTokenizer::gpt2().encode(&text, SpecialTokens::Allow).unwrap();

    let first = load_tokens(&source, &gpt2, None).unwrap();
    assert_eq!(first.tokens, expected);
    let (bin, header) = cache_paths(&source, &gpt2, None);
    assert_eq!(first.cache, CacheStatus::Written(bin.clone()));
    // GPT-2's ids fit in u16: two bytes each, little-endian.
    let raw = std::fs::read(&bin).unwrap();
    assert_eq!(raw.len(), 2 * expected.len());
    assert_eq!(u16::from_le_bytes([raw[0], raw[1]]) as u32, expected[0]);
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&header).unwrap()).unwrap();
    assert_eq!(meta["count"], expected.len());
    assert_eq!(meta["dtype"], "u16");
    assert_eq!(meta["source"]["size"], text.len());

    let second = load_tokens(&source, &gpt2, None).unwrap();
    assert_eq!(second.cache, CacheStatus::Reused(bin.clone()));
    assert_eq!(second.tokens, expected);

    // Another tokenizer gets its own cache, stored as u16 too (65 < 2^16).
    let chars: AnyTokenizer = CharTokenizer::from_text(&text).into();
    let by_char = load_tokens(&source, &chars, None).unwrap();
    assert!(matches!(by_char.cache, CacheStatus::Written(ref p) if *p != bin));
    assert_eq!(by_char.tokens.len(), text.chars().count());

    // A changed source is tokenized again.
    let edited = format!("{text} The end.");
    write(&dir, "stories.txt", edited.as_bytes());
    let third = load_tokens(&source, &gpt2, None).unwrap();
    assert_eq!(third.cache, CacheStatus::Written(bin.clone()));
    assert_eq!(third.tokens, BpeTokenizer::gpt2().encode(&edited, SpecialTokens::Allow).unwrap());

    // A corrupted array is noticed (its hash no longer matches) and replaced.
    let mut raw = std::fs::read(&bin).unwrap();
    raw[10] ^= 1;
    std::fs::write(&bin, raw).unwrap();
    assert_eq!(load_tokens(&source, &gpt2, None).unwrap().cache, CacheStatus::Written(bin.clone()));
    assert_eq!(load_tokens(&source, &gpt2, None).unwrap().cache, CacheStatus::Reused(bin));

    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cache_can_live_in_another_folder() {
    let dir = temp_dir("cache-dir");
    let source = write(&dir, "a.txt", b"hello hello hello");
    let cache_dir = dir.join("cache");
    let gpt2 = AnyTokenizer::gpt2();
    let corpus = load_tokens(&source, &gpt2, Some(&cache_dir)).unwrap();
    assert!(matches!(corpus.cache, CacheStatus::Written(ref p) if p.starts_with(&cache_dir)));
    assert_eq!(corpus.tokens, [31373, 23748, 23748]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = temp_dir("bad-input");
    let gpt2 = AnyTokenizer::gpt2();

    let missing = dir.join("missing.txt");
    let err = load_tokens(&missing, &gpt2, None).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }) && err.to_string().contains("missing.txt"), "{err}");

    let empty = write(&dir, "empty.txt", b"");
    let err = tokenize_file(&empty, &gpt2).unwrap_err();
    assert!(matches!(err, DataError::EmptyFile { .. }), "{err}");
    assert!(err.to_string().contains("empty.txt") && err.to_string().contains("empty"), "{err}");

    // Bytes that are not UTF-8: BPE encodes them as bytes, exactly.
    let latin1 = write(&dir, "latin1.txt", b"caf\xE9 au lait\n\xFF");
    let ids = tokenize_file(&latin1, &gpt2).unwrap();
    assert_eq!(BpeTokenizer::gpt2().decode_bytes(&ids).unwrap(), b"caf\xE9 au lait\n\xFF");
    // ... while a character vocabulary cannot, and says where.
    let chars: AnyTokenizer = CharTokenizer::from_text("cafe au lait\n").into();
    let err = tokenize_file(&latin1, &chars).unwrap_err();
    assert!(matches!(err, DataError::Tokenize { source: TokenizerError::NotUtf8 { offset: 3 }, .. }), "{err}");
    assert!(err.to_string().contains("latin1.txt"), "{err}");

    // A corpus shorter than one window.
    let short = write(&dir, "short.txt", builtin_corpus(1).as_bytes());
    let ids = tokenize_file(&short, &gpt2).unwrap();
    let n = ids.len();
    let err = SlidingWindow::new(ids, 1024, 1024).unwrap_err();
    assert_eq!(err.to_string(), format!("data has {n} tokens; one window needs 1025"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn builtin_corpus_to_batches() {
    let text = builtin_corpus(100_000);
    let ids = BpeTokenizer::gpt2().encode(&text, SpecialTokens::Allow).unwrap();
    let (train, val) = train_val_split(&ids, 0.9).unwrap();
    assert_eq!(train.len() + val.len(), ids.len());
    assert_eq!(val.len(), ids.len() - (ids.len() as f64 * 0.9).round() as usize);

    let data = SlidingWindow::new(train.to_vec(), 32, 32).unwrap();
    let loader =
        DataLoader::new(data, LoaderConfig { batch_size: 4, shuffle: true, drop_last: true, seed: 7 }).unwrap();
    assert_eq!(loader.batches_per_epoch(), (train.len() - 32).div_ceil(32) / 4);
    for (x, y) in loader.iter().take(10) {
        assert_eq!(x.dims(), [4, 32]);
        let (x, y) = (x.to_vec2::<i64>(), y.to_vec2::<i64>());
        for (row_x, row_y) in x.iter().zip(&y) {
            assert_eq!(row_x[1..], row_y[..31]); // the target is the input, one ahead
                                                 // and the row is a real window of the stream
            let start = train.windows(32).position(|w| w.iter().zip(row_x).all(|(&a, &b)| a as i64 == b)).unwrap();
            assert_eq!(row_y[31], train[start + 32] as i64);
        }
    }
}
