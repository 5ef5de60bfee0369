//! Classification fine-tuning on the built-in three-topic sentences: a new
//! `[C] → [3]` head on a small GPT reading the last token.
//!
//! ```sh
//! cargo run --release --example classification
//! ```

use gpt::finetune::class_data::builtin_classification;
use gpt::finetune::classify::{encode_and_split, fit_classifier, ClassifierConfig, GptClassifier, TrainMode};
use gpt::finetune::{FinetuneEvent, FitOptions};
use gpt::model::{GPTConfig, GPTModel};
use gpt::tokenizer::{train_bpe, AnyTokenizer};
use tensor::Generator;

fn main() {
    let data = builtin_classification(600, 0);
    for i in 0..3 {
        println!("{:8} {}", data.classes[data.labels[i]], data.texts[i]);
    }
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&data.texts.join("\n"), 400).unwrap());
    let config = GPTConfig { vocab_size: tokenizer.vocab_size(), ..GPTConfig::preset("nano").unwrap() };
    let gpt = GPTModel::new(config, &mut Generator::seed(0));
    let splits = encode_and_split(&data, &tokenizer, 64, 1).unwrap();
    let head = ClassifierConfig { classes: data.classes.clone(), max_length: 64, pad_id: 0 };
    let mut model = GptClassifier::new(gpt, head, &mut Generator::seed(2));
    println!("{}", model.prepare(&TrainMode::Full, &mut Generator::seed(3)).unwrap());
    let opts = FitOptions { epochs: 3, lr: 1e-3, batch_size: 16, ..Default::default() };
    let report = fit_classifier(&mut model, &splits, &opts, |e| {
        if let FinetuneEvent::Epoch { epoch, val_loss, val_accuracy: Some(acc), .. } = e {
            println!("epoch {epoch}: validation loss {val_loss:.3}, accuracy {:.1}%", 100.0 * acc);
        }
    })
    .unwrap();
    println!("test accuracy {:.1}%", 100.0 * report.test_accuracy);
    let probs = model.predict(&tokenizer, "On Sunday the thunder kept everyone indoors.").unwrap();
    println!(
        "\"On Sunday the thunder kept everyone indoors.\" → {:?}",
        probs.iter().map(|p| format!("{p:.3}")).collect::<Vec<_>>()
    );
}
