//! A conversation with a chat model, turn by turn.
//!
//! Each turn adds the user's message to the history, renders the whole
//! history with the model's [`ChatTemplate`] (ending with the opening of the
//! assistant's turn), encodes it as `transformers`' `apply_chat_template`
//! does, and generates until an end token. The reply, without its end
//! token, joins the history as the assistant's message. Generation goes
//! through one [`Session`], so a turn whose prompt extends the last turn's
//! ids feeds only the new ones.

use crate::chat_template::{ChatTemplate, ChatTemplateError, Message};
use crate::generate::GenerateOptions;
use crate::model::GPTModel;
use crate::session::Session;
use crate::tokenizer::{AnyTokenizer, SpecialTokens, TokenizerError};

/// Why a turn could not be answered; one line.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Template(#[from] ChatTemplateError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("the conversation is {tokens} tokens; the model's context holds {context} (/reset starts over)")]
    TooLong { tokens: usize, context: usize },
    #[error("the chat template rendered an empty prompt")]
    Empty,
}

/// The prompt for `messages` and its ids, as `transformers`'
/// `apply_chat_template(messages, add_generation_prompt=True)` gives them:
/// the text rendered, then tokenized with special-token text matched and
/// no special tokens added (the template wrote BOS, if any, into the text).
pub fn prompt_ids(
    template: &ChatTemplate,
    tokenizer: &AnyTokenizer,
    messages: &[Message],
) -> Result<(String, Vec<u32>), ChatError> {
    let text = template.render(messages, true)?;
    let ids = tokenizer.encode(&text, SpecialTokens::Allow)?;
    Ok((text, ids))
}

/// A model, its template, the history so far, and the session that
/// caches it.
pub struct Conversation<'m> {
    tokenizer: &'m AnyTokenizer,
    template: ChatTemplate,
    messages: Vec<Message>,
    session: Session<'m>,
    context: usize,
}

impl<'m> Conversation<'m> {
    pub fn new(model: &'m GPTModel, tokenizer: &'m AnyTokenizer, template: ChatTemplate) -> Conversation<'m> {
        let context = model.config.context_length;
        Conversation { tokenizer, template, messages: Vec::new(), session: Session::new(model), context }
    }

    /// Starts over with `messages` as the history (e.g. a system message).
    pub fn reset(&mut self, messages: Vec<Message>) {
        self.messages = messages;
        self.session.clear();
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// See [`Session::last_prompt_fed`].
    pub fn last_prompt_fed(&self) -> usize {
        self.session.last_prompt_fed()
    }

    /// Answers `message` in the light of the history, streaming each new id
    /// to `on_token`; the message and the reply join the history. On an
    /// error the history is left as it was.
    pub fn reply(
        &mut self,
        message: Message,
        opts: &GenerateOptions,
        on_token: impl FnMut(u32),
    ) -> Result<String, ChatError> {
        self.messages.push(message);
        let answered = self.answer_last(opts, on_token);
        match answered {
            Ok(text) => {
                self.messages.push(Message::new("assistant", text.clone()));
                Ok(text)
            }
            Err(e) => {
                self.messages.pop();
                Err(e)
            }
        }
    }

    /// The assistant's reply to the history as it stands.
    pub fn answer_last(&mut self, opts: &GenerateOptions, on_token: impl FnMut(u32)) -> Result<String, ChatError> {
        let (_, ids) = prompt_ids(&self.template, self.tokenizer, &self.messages)?;
        if ids.is_empty() {
            return Err(ChatError::Empty);
        }
        if ids.len() >= self.context {
            return Err(ChatError::TooLong { tokens: ids.len(), context: self.context });
        }
        let mut new = self.session.generate(&ids, opts, on_token);
        if new.last().is_some_and(|&id| opts.is_stop(id)) {
            new.pop();
        }
        Ok(self.tokenizer.decode(&new)?)
    }
}
