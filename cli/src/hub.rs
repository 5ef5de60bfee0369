//! `--model ORG/NAME[@REVISION]`: a model on the Hugging Face Hub, named
//! where a model folder goes. The name becomes a folder in the Hugging
//! Face cache (`gpt::hub`), downloaded first when it is not there, with a
//! progress bar per file on stderr.
//!
//! A path that exists is always a path: `runs/gpt2` names the folder when
//! there is one, and a Hub model only when there is not.

use std::path::{Path, PathBuf};

use anyhow::Result;
use gpt::hub::{Hub, HubError, ModelId, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// The folder `--model` names: the argument itself when it is a path
/// (or is not shaped like `ORG/NAME`), else the Hub model's snapshot in the
/// cache, fetched if need be.
pub fn model_folder(arg: &Path) -> Result<PathBuf> {
    if is_local(arg) {
        return Ok(arg.to_path_buf());
    }
    let Some(id) = arg.to_str().and_then(ModelId::parse) else {
        return Ok(arg.to_path_buf());
    };
    let hub = Hub::from_env();
    hub.model_folder(&id, &mut FileBars::default()).map_err(|e| match e {
        // The name may be a mistyped path: say that no folder has it either.
        HubError::NotFound { .. } | HubError::Denied { .. } | HubError::Network { .. } | HubError::NotCached { .. } => {
            anyhow::anyhow!("{e}; no folder {} exists either", arg.display())
        }
        e => e.into(),
    })
}

/// A folder or file there, or one a crash left mid-swap beside its name
/// (which the loaders read, `gpt::atomic::readable_dir`).
fn is_local(arg: &Path) -> bool {
    std::fs::symlink_metadata(arg).is_ok() || gpt::atomic::readable_dir(arg, gpt::weights::hf::CONFIG_FILE) != arg
}

/// One progress bar per file downloaded (hidden when stderr is not a
/// terminal, as indicatif does).
#[derive(Default)]
struct FileBars {
    bar: Option<ProgressBar>,
}

impl Progress for FileBars {
    fn start(&mut self, file: &str, total: Option<u64>, done: u64) {
        self.finish();
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg:>28} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg:>28} {bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(file.to_string());
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
