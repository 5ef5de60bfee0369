//! `scratchgpt chat`: talk to an instruction-tuned model.
//!
//! Each line typed becomes the instruction of an Alpaca prompt (the same
//! format `finetune instruct` trains on) and the response streams back.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Result};
use gpt::chat_template::{ChatTemplate, Message};
use gpt::finetune::instruct::respond;
use gpt::finetune::lora::load_adapter;
use gpt::tokenizer::Utf8Stream;

use crate::common::{load_model_and_tokenizer, out, outln, print_json, stream_out};

#[derive(clap::Args)]
pub struct Args {
    /// An instruction-tuned model folder, or a Hugging Face Hub model, ORG/NAME[@REVISION].
    #[arg(long)]
    model: PathBuf,
    /// A LoRA adapter folder (PEFT layout) to load onto the model first.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Answer this one instruction and exit.
    #[arg(long)]
    prompt: Option<String>,
    /// The "### Input:" part for --prompt.
    #[arg(long, default_value = "")]
    input: String,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// With --prompt: one JSON object {"prompt", "input", "response"}.
    #[arg(long, requires = "prompt")]
    json: bool,
    /// Print --prompt as the model's chat template writes it (one user
    /// turn, then the opening of the assistant's), without running the model.
    #[arg(long, requires = "prompt", conflicts_with_all = ["adapter", "json"])]
    render_only: bool,
}

pub fn run(mut args: Args) -> Result<i32> {
    args.model = crate::hub::model_folder(&args.model)?;
    if args.render_only {
        return render_only(&args);
    }
    let (mut model, tokenizer) = load_model_and_tokenizer(&args.model)?;
    if let Some(dir) = &args.adapter {
        load_adapter(&mut model, dir)?;
    }
    if tokenizer.eot_id().is_none() {
        bail!("{}: the tokenizer has no <|endoftext|> token, so responses cannot end", args.model.display());
    }
    let answer = |instruction: &str, input: &str, stream: bool| -> Result<String> {
        let mut utf8 = Utf8Stream::new();
        let eot = tokenizer.eot_id();
        let mut failed = None;
        let text = respond(&model, &tokenizer, instruction, input, args.max_new_tokens, |id| {
            if stream && Some(id) != eot {
                stream_out(&utf8.push(&tokenizer.decode_bytes(&[id]).unwrap_or_default()), &mut failed);
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if stream {
            outln!("{}", utf8.finish())?;
        }
        Ok(text)
    };
    if let Some(prompt) = &args.prompt {
        if args.json {
            let response = answer(prompt, &args.input, false)?;
            print_json(&serde_json::json!({ "prompt": prompt, "input": args.input, "response": response }))?;
        } else {
            answer(prompt, &args.input, true)?;
        }
        return Ok(0);
    }
    outln!("Type an instruction (an empty line or Ctrl-D quits).")?;
    let stdin = std::io::stdin();
    loop {
        out!("> ")?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        answer(line.trim(), "", true)?;
    }
    Ok(0)
}

/// `--render-only`: the text a chat model would be given for `--prompt`
/// (and `--input`, after a blank line), by the folder's chat template.
fn render_only(args: &Args) -> Result<i32> {
    let Some(template) = ChatTemplate::from_folder(&args.model)? else {
        bail!(
            "{}: has no chat template ({} or chat_template in {})",
            args.model.display(),
            gpt::chat_template::CHAT_TEMPLATE_FILE,
            gpt::chat_template::TOKENIZER_CONFIG_FILE
        );
    };
    let prompt = args.prompt.as_deref().unwrap_or_default();
    let content = if args.input.is_empty() { prompt.to_string() } else { format!("{prompt}\n\n{}", args.input) };
    out!("{}", template.render(&[Message::new("user", content)], true)?)?;
    Ok(0)
}
