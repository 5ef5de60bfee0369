//! `scratchgpt chat`: talk to an instruction-tuned model.
//!
//! A model folder with a chat template is talked to in its own format, turn
//! by turn: the history is kept (`/reset` clears it, `/exit` or end of input
//! ends), each turn renders it whole, and the KV cache carries over between
//! turns ([`gpt::chat::Conversation`]). A folder without one gets each line
//! as the instruction of an Alpaca prompt (the format `finetune instruct`
//! trains on), one turn at a time.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gpt::chat::{prompt_ids, Conversation};
use gpt::chat_template::{ChatTemplate, Message};
use gpt::end_tokens::{chat_end_token_ids, end_token_ids};
use gpt::finetune::instruct::{respond, user_message, PromptStyle};
use gpt::finetune::lora::load_adapter;
use gpt::generate::GenerateOptions;
use gpt::model::GPTModel;
use gpt::tokenizer::{AnyTokenizer, Utf8Stream};

use crate::common::{load_model_and_tokenizer, out, outln, print_json, stream_out};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("one_shot").args(["prompt", "messages"])))]
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
    /// Answer the last turn of this conversation, a JSON list of
    /// {"role", "content"} messages, and exit (needs a chat template).
    #[arg(long)]
    messages: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// With --prompt or --messages: one JSON object (with --render-only,
    /// {"text", "ids"}).
    #[arg(long, requires = "one_shot")]
    json: bool,
    /// Print --prompt (one user turn) or --messages as the model's chat
    /// template writes it, with the opening of the assistant's turn,
    /// without running the model.
    #[arg(long, requires = "one_shot", conflicts_with = "adapter")]
    render_only: bool,
}

/// What the user can type instead of a message.
const RESET: &str = "/reset";
const EXIT: &str = "/exit";

pub fn run(mut args: Args) -> Result<i32> {
    args.model = crate::hub::model_folder(&args.model)?;
    let template = ChatTemplate::from_folder(&args.model)?;
    let messages = args.messages.as_deref().map(read_messages).transpose()?;
    if args.render_only {
        return render_only(&args, template, messages);
    }
    if messages.is_some() && template.is_none() {
        bail!("{}: --messages needs a chat template, and the folder has none", args.model.display());
    }
    let (mut model, tokenizer) = load_model_and_tokenizer(&args.model)?;
    if let Some(dir) = &args.adapter {
        load_adapter(&mut model, dir)?;
    }
    let stop_tokens = match &template {
        Some(t) => chat_end_token_ids(&args.model, &tokenizer, t)?,
        None => end_token_ids(&args.model, &tokenizer)?,
    };
    if stop_tokens.is_empty() {
        bail!(
            "{}: neither the folder nor the tokenizer names an end token, so replies cannot end",
            args.model.display()
        );
    }
    let opts = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        stop_tokens,
        vocab_limit: Some(tokenizer.vocab_size()),
        ..Default::default()
    };
    let mut chat = Chat { model: &model, tokenizer: &tokenizer, template, opts };
    if let Some(messages) = messages {
        let response = chat.answer_conversation(messages, !args.json)?;
        if args.json {
            print_json(&serde_json::json!({ "response": response }))?;
        }
        return Ok(0);
    }
    if let Some(prompt) = &args.prompt {
        let response = chat.answer_one(prompt, &args.input, !args.json)?;
        if args.json {
            print_json(&serde_json::json!({ "prompt": prompt, "input": args.input, "response": response }))?;
        }
        return Ok(0);
    }
    chat.interactive()
}

/// The model, its tokenizer, its template (if any) and the generation
/// options every turn uses.
struct Chat<'m> {
    model: &'m GPTModel,
    tokenizer: &'m AnyTokenizer,
    template: Option<ChatTemplate>,
    opts: GenerateOptions,
}

impl<'m> Chat<'m> {
    /// Streams a reply to stdout (when `stream`) as its ids come.
    fn streamed(&self, stream: bool, produce: impl FnOnce(&mut dyn FnMut(u32)) -> Result<String>) -> Result<String> {
        let mut utf8 = Utf8Stream::new();
        let mut failed = None;
        let text = produce(&mut |id| {
            if stream && !self.opts.is_stop(id) {
                stream_out(&utf8.push(&self.tokenizer.decode_bytes(&[id]).unwrap_or_default()), &mut failed);
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        if stream {
            outln!("{}", utf8.finish())?;
        }
        Ok(text)
    }

    /// The reply to the last turn of `messages`.
    fn answer_conversation(&mut self, messages: Vec<Message>, stream: bool) -> Result<String> {
        let template = self.template.clone().expect("checked by the caller");
        let mut conversation = Conversation::new(self.model, self.tokenizer, template);
        conversation.reset(messages);
        self.streamed(stream, |on_token| Ok(conversation.answer_last(&self.opts, on_token)?))
    }

    /// The reply to one instruction: one user turn in the model's
    /// template, or an Alpaca prompt.
    fn answer_one(&mut self, instruction: &str, input: &str, stream: bool) -> Result<String> {
        match &self.template {
            Some(_) => self.answer_conversation(vec![user_message(instruction, input)], stream),
            None => self.streamed(stream, |on_token| {
                let (model, tokenizer) = (self.model, self.tokenizer);
                let (max, stop) = (self.opts.max_new_tokens, &self.opts.stop_tokens);
                Ok(respond(model, tokenizer, &PromptStyle::Alpaca, instruction, input, max, stop, on_token)?)
            }),
        }
    }

    /// Reads messages from stdin until `/exit` or end of input.
    fn interactive(&mut self) -> Result<i32> {
        let mut conversation =
            self.template.clone().map(|template| Conversation::new(self.model, self.tokenizer, template));
        match conversation {
            Some(_) => outln!("Type a message ({RESET} starts over, {EXIT} or Ctrl-D quits).")?,
            None => outln!("Type an instruction ({EXIT} or Ctrl-D quits).")?,
        }
        let stdin = std::io::stdin();
        loop {
            out!("> ")?;
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim();
            match (line, conversation.as_mut()) {
                ("", _) => continue,
                (EXIT, _) => break,
                (RESET, Some(c)) => c.reset(Vec::new()),
                (RESET, None) => {}
                (message, Some(c)) => {
                    let reply = self
                        .streamed(true, |on_token| Ok(c.reply(Message::new("user", message), &self.opts, on_token)?));
                    // A turn the template refuses, or one past the context,
                    // leaves the history as it was; the conversation goes on.
                    if let Err(e) = reply {
                        eprintln!("error: {e}");
                    }
                }
                (instruction, None) => {
                    self.answer_one(instruction, "", true)?;
                }
            }
        }
        Ok(0)
    }
}

/// A `--messages` file: a JSON list of `{role, content}`.
fn read_messages(path: &Path) -> Result<Vec<Message>> {
    let text = gpt::input::read_capped_string(path, gpt::input::JSON_LIMIT)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let messages: Vec<Message> = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{}: not a JSON list of {{\"role\", \"content\"}} messages ({e})", path.display())
    })?;
    if messages.is_empty() {
        bail!("{}: the conversation has no messages", path.display());
    }
    Ok(messages)
}

/// `--render-only`: the text a chat model would be given for `--prompt`
/// (and `--input`, after a blank line) or `--messages`, by the folder's
/// chat template; with `--json`, also its ids.
fn render_only(args: &Args, template: Option<ChatTemplate>, messages: Option<Vec<Message>>) -> Result<i32> {
    let Some(template) = template else {
        bail!(
            "{}: has no chat template ({} or chat_template in {})",
            args.model.display(),
            gpt::chat_template::CHAT_TEMPLATE_FILE,
            gpt::chat_template::TOKENIZER_CONFIG_FILE
        );
    };
    let messages = match messages {
        Some(messages) => messages,
        None => vec![user_message(args.prompt.as_deref().unwrap_or_default(), &args.input)],
    };
    if !args.json {
        out!("{}", template.render(&messages, true)?)?;
        return Ok(0);
    }
    let tokenizer = gpt::weights::load_tokenizer(&args.model)?.unwrap_or_else(AnyTokenizer::gpt2);
    let (text, ids) = prompt_ids(&template, &tokenizer, &messages)?;
    print_json(&serde_json::json!({ "text": text, "ids": ids }))?;
    Ok(0)
}
