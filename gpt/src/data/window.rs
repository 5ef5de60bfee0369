//! The sliding-window dataset: a token stream cut into training examples.
//!
//! A GPT learns to predict the next token at every position at once. From a
//! stream of token ids we take windows of `max_length` ids as the input and
//! the same window shifted one place to the right as the target:
//!
//! ```text
//! ids:      [ 40, 367, 2885, 1464, 1807, 3619, 402, 271, ... ]
//! window 0: input [40, 367, 2885, 1464]   target [367, 2885, 1464, 1807]
//! window 1: input [1807, 3619, 402, 271]  target [3619, 402, 271, 10899]
//!                                         (stride 4: windows do not overlap)
//! ```
//!
//! so `target[t]` is the token that follows `input[..=t]`. Window `i` starts
//! at `i * stride`; a stride equal to `max_length` uses each token once per
//! epoch, a smaller stride overlaps the windows. A window needs
//! `max_length + 1` ids, so a stream of `n` ids gives
//! `ceil((n - max_length) / stride)` windows — the book's `GPTDatasetV1`.

use super::DataError;

/// Token ids cut into overlapping or adjacent `(input, target)` windows.
#[derive(Clone, Debug)]
pub struct SlidingWindow {
    tokens: Vec<u32>,
    max_length: usize,
    stride: usize,
}

impl SlidingWindow {
    /// Windows of `max_length` ids every `stride` ids. Fails when the stream
    /// is shorter than one window, or a setting is zero.
    pub fn new(tokens: Vec<u32>, max_length: usize, stride: usize) -> Result<SlidingWindow, DataError> {
        if max_length == 0 || stride == 0 {
            return Err(DataError::BadConfig(format!(
                "max_length ({max_length}) and stride ({stride}) must both be at least 1"
            )));
        }
        let needed = max_length + 1;
        if tokens.len() < needed {
            return Err(DataError::TooShort { tokens: tokens.len(), needed });
        }
        Ok(SlidingWindow { tokens, max_length, stride })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        (self.tokens.len() - self.max_length).div_ceil(self.stride)
    }

    /// Always false: a dataset holds at least one window.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Tokens per window (the model's context length T).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Distance between window starts.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The whole token stream.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Window `i` as `(input, target)`, each `max_length` ids long.
    pub fn get(&self, i: usize) -> (&[u32], &[u32]) {
        assert!(i < self.len(), "window {i} of {}", self.len());
        let start = i * self.stride;
        (&self.tokens[start..start + self.max_length], &self.tokens[start + 1..start + 1 + self.max_length])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_inputs_shifted_by_one() {
        let data = SlidingWindow::new((0..10).collect(), 4, 1).unwrap();
        assert_eq!(data.len(), 6);
        assert_eq!(data.get(0), (&[0, 1, 2, 3][..], &[1, 2, 3, 4][..]));
        assert_eq!(data.get(5), (&[5, 6, 7, 8][..], &[6, 7, 8, 9][..]));
    }

    #[test]
    fn stride_sets_the_window_starts() {
        // range(0, 10 - 4, 4) = [0, 4]
        let data = SlidingWindow::new((0..10).collect(), 4, 4).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data.get(1).0, [4, 5, 6, 7]);
        // range(0, 11 - 4, 4) = [0, 4]: the last start needs a full window.
        assert_eq!(SlidingWindow::new((0..11).collect(), 4, 4).unwrap().len(), 2);
        assert_eq!(SlidingWindow::new((0..13).collect(), 4, 4).unwrap().len(), 3);
    }

    #[test]
    fn exactly_one_window() {
        let data = SlidingWindow::new((0..5).collect(), 4, 3).unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data.get(0).1, [1, 2, 3, 4]);
    }

    #[test]
    fn too_short_names_both_numbers() {
        let err = SlidingWindow::new(vec![0; 812], 1024, 1024).unwrap_err();
        assert_eq!(err.to_string(), "data has 812 tokens; one window needs 1025");
        assert!(matches!(SlidingWindow::new(vec![0; 10], 0, 1), Err(DataError::BadConfig(_))));
        assert!(matches!(SlidingWindow::new(vec![0; 10], 4, 0), Err(DataError::BadConfig(_))));
    }
}
