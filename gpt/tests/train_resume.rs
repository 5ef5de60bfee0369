//! Pretraining end to end on a nano model: the loss falls, a run stopped
//! half-way and resumed from its checkpoint reproduces the uninterrupted
//! run's losses exactly, and the output folder is a loadable model.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use autograd::nn::Module;
use gpt::data::generate_stories;
use gpt::model::{GPTConfig, GPTModel};
use gpt::tokenizer::{AnyTokenizer, CharTokenizer, SpecialTokens};
use gpt::train::{checkpoint_dir, Checkpoint, StopReason, TrainEvent, TrainOptions, Trainer};
use tensor::Generator;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scratchgpt-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn setup() -> (GPTModel, AnyTokenizer, Vec<u32>, TrainOptions) {
    let text = generate_stories(7, 40_000);
    let tok = CharTokenizer::from_text(&text);
    let tokens = tok.encode(&text).unwrap();
    let config = GPTConfig {
        vocab_size: tok.vocab_size(),
        context_length: 32,
        drop_rate: 0.1,
        ..GPTConfig::preset("nano").unwrap()
    };
    let model = GPTModel::new(config, &mut Generator::seed(3));
    let options = TrainOptions {
        steps: Some(12),
        batch_size: 4,
        context: 32,
        lr: 3e-3,
        warmup: 3,
        eval_every: 4,
        eval_windows: 4,
        checkpoint_every: 5,
        ..Default::default()
    };
    (model, AnyTokenizer::Char(tok), tokens, options)
}

fn losses(events: &[TrainEvent]) -> Vec<f64> {
    events.iter().filter_map(|e| if let TrainEvent::Step { loss, .. } = e { Some(*loss) } else { None }).collect()
}

#[test]
fn resumed_run_matches_uninterrupted_run() {
    let never = AtomicBool::new(false);
    let (model, tok, tokens, options) = setup();
    let straight_dir = scratch_dir("straight");
    let mut straight =
        Trainer::new(model, tok, tokens.clone(), "stories".into(), options, straight_dir.clone()).unwrap();
    let mut events = Vec::new();
    let summary = straight.run(&never, |e| events.push(e.clone())).unwrap();
    assert_eq!(summary.stop, StopReason::Finished);
    let all = losses(&events);
    assert_eq!(all.len(), 12);
    assert!(all[11] < all[0] - 0.5, "loss did not fall: {all:?}");

    // Same run, stopped after step 6 (not a multiple of checkpoint_every).
    let (model, tok, tokens, options) = setup();
    let dir = scratch_dir("resumed");
    let stop = AtomicBool::new(false);
    let mut first = Trainer::new(model, tok, tokens.clone(), "stories".into(), options, dir.clone()).unwrap();
    let mut events = Vec::new();
    let summary = first
        .run(&stop, |e| {
            if let TrainEvent::Step { step: 6, .. } = e {
                stop.store(true, Ordering::Relaxed);
            }
            events.push(e.clone());
        })
        .unwrap();
    assert_eq!(summary.stop, StopReason::Interrupted);
    let checkpoint = Checkpoint::load(&checkpoint_dir(&dir)).unwrap();
    assert_eq!(checkpoint.state.step, 6);
    let mut second = Trainer::resume(checkpoint, tokens, "stories", dir.clone()).unwrap();
    second.run(&never, |e| events.push(e.clone())).unwrap();
    assert_eq!(losses(&events), all, "resumed losses differ from the uninterrupted run");

    // The run's folder is a model with its tokenizer, metrics and a plot.
    // The saved model is the trained one, weight for weight, and the saved
    // tokenizer gives the trainer's ids.
    let model = gpt::weights::load_model(&dir).unwrap();
    assert_eq!(model.config, second.model.config);
    let weights = |m: &GPTModel| {
        m.named_parameters().into_iter().map(|(name, p)| (name, p.data().to_vec::<f32>())).collect::<Vec<_>>()
    };
    let (saved, trained) = (weights(&model), weights(&second.model));
    assert_eq!(saved.len(), trained.len());
    for ((name, s), (_, t)) in saved.iter().zip(&trained) {
        assert!(s == t, "{name} differs between the trained model and the saved folder");
    }
    assert!(saved.iter().zip(&weights(&setup().0)).any(|((_, s), (_, init))| s != init), "nothing was trained");
    let tokenizer = gpt::weights::load_tokenizer(&dir).unwrap().expect("the run saves its tokenizer");
    let (_, trainer_tokenizer, _, _) = setup();
    let sample = &generate_stories(8, 2_000);
    let ids = tokenizer.encode(sample, SpecialTokens::Reject).unwrap();
    assert_eq!(ids, trainer_tokenizer.encode(sample, SpecialTokens::Reject).unwrap());
    assert_eq!(tokenizer.decode(&ids).unwrap(), *sample);
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"train\"")).count(), 12);
    assert!(std::fs::read_to_string(dir.join("loss.svg")).unwrap().starts_with("<svg"));
}

#[test]
fn bad_training_setups_are_errors() {
    let (model, tok, tokens, options) = setup();
    let err = Trainer::new(model, tok, tokens[..20].to_vec(), "x".into(), options.clone(), scratch_dir("short"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokens") && err.contains("window"), "{err}");
    let (model, tok, tokens, _) = setup();
    let zero = TrainOptions { batch_size: 0, ..options };
    let err = Trainer::new(model, tok, tokens, "x".into(), zero, scratch_dir("zero")).err().unwrap().to_string();
    assert_eq!(err, "--batch-size must be at least 1");
}

#[test]
fn a_diverging_run_stops_with_the_last_good_checkpoint() {
    let (model, tok, tokens, options) = setup();
    let dir = scratch_dir("diverge");
    // A learning rate this large overflows the weights within a few steps.
    let options = TrainOptions { lr: 1e30, warmup: 0, grad_clip: 0.0, checkpoint_every: 1, ..options };
    let mut trainer = Trainer::new(model, tok, tokens, "stories".into(), options, dir.clone()).unwrap();
    let err = trainer.run(&AtomicBool::new(false), |_| {}).err().expect("the run diverges");
    let message = err.to_string();
    assert!(message.contains("loss became") && message.contains("checkpoint"), "{message}");
    // The checkpoint on disk is from before the bad step and loads.
    let checkpoint = Checkpoint::load(&checkpoint_dir(&dir)).unwrap();
    assert!(message.contains(&format!("at step {}", checkpoint.state.step + 1)), "{message}");
}
