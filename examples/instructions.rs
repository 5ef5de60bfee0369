//! Instruction tuning on the built-in tasks: the Alpaca prompt, the
//! collate function's padding and −100 masks, a short run, and the exact
//! match of held-out answers.
//!
//! ```sh
//! cargo run --release --example instructions
//! ```

use gpt::finetune::instruct::{
    collate, encode_record, fit_instructions, format_prompt, respond_all, InstructOptions, PromptStyle,
};
use gpt::finetune::instruct_data::builtin_instructions;
use gpt::finetune::split::split3;
use gpt::finetune::{FinetuneEvent, FitOptions};
use gpt::model::{GPTConfig, GPTModel};
use gpt::tokenizer::{train_bpe, AnyTokenizer};
use tensor::Generator;

fn main() {
    let records = builtin_instructions(600, 0);
    print!("{}{}\n\n", format_prompt(&records[2].instruction, &records[2].input), records[2].output);

    let corpus: Vec<String> = records.iter().map(|r| format_prompt(&r.instruction, &r.input) + &r.output).collect();
    let tokenizer = AnyTokenizer::Bpe(train_bpe(&corpus.join("<|endoftext|>"), 400).unwrap());
    let end = tokenizer.eot_id().unwrap();

    let (train, val, test) = split3(records, 0.85, 0.05, 1);
    let encode = |rs: &[gpt::finetune::instruct_data::Instruction]| -> Vec<_> {
        rs.iter().map(|r| encode_record(&tokenizer, &PromptStyle::Alpaca, r).unwrap()).collect()
    };
    let (train_ids, val_ids) = (encode(&train), encode(&val));
    let (x, y) = collate(&[&train_ids[0], &train_ids[1]], end, false, 128);
    println!("collate: inputs {}, targets' last row ends {:?}", x.shape(), &y.to_vec::<i64>()[y.numel() - 4..]);

    let config = GPTConfig {
        vocab_size: tokenizer.vocab_size(),
        context_length: 128,
        emb_dim: 96,
        n_heads: 4,
        n_layers: 3,
        drop_rate: 0.0,
        qkv_bias: true,
        layer_norm_eps: 1e-5,
        ..GPTConfig::gpt2(1, 1, 1)
    };
    let mut model = GPTModel::new(config, &mut Generator::seed(0));
    let opts = InstructOptions {
        fit: FitOptions { epochs: 20, lr: 3e-3, batch_size: 16, ..Default::default() },
        mask_prompt: false,
    };
    fit_instructions(&mut model, &train_ids, &val_ids, end, &opts, |e| {
        if let FinetuneEvent::Epoch { epoch, train_loss, val_loss, .. } = e {
            println!("epoch {epoch}: train loss {train_loss:.3}, validation loss {val_loss:.3}");
        }
    })
    .unwrap();
    let (scored, exact) = respond_all(&mut model, &tokenizer, &PromptStyle::Alpaca, &test, 12, &[end], |_| {}).unwrap();
    for s in scored.iter().take(5) {
        println!("{} {:?} → {:?} (expected {:?})", s.instruction, s.input, s.model_response, s.output);
    }
    println!(
        "exact match on {} held-out prompts: {exact} ({:.0}%)",
        test.len(),
        100.0 * exact as f64 / test.len() as f64
    );
}
