//! Evaluation: mean cross-entropy (and perplexity) of a model on a token
//! stream.
//!
//! The stream is cut into consecutive windows of N+1 tokens with stride N,
//! so every token after the first is predicted exactly once, from at most N
//! tokens of context; the last, shorter window counts if it has at least two
//! tokens. The loss is the mean over all predicted tokens, and perplexity is
//! e^loss: the number of equally likely choices the model is as unsure as.

use autograd::loss::cross_entropy;
use autograd::no_grad;
use tensor::Tensor;

use crate::model::GPTModel;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalResult {
    pub loss: f64,
    pub perplexity: f64,
    /// Tokens predicted (the stream's length minus one).
    pub tokens: usize,
}

/// The windows `(start, len)` of N+1 tokens with stride N over `n` tokens.
pub fn windows(n: usize, context: usize) -> Vec<(usize, usize)> {
    assert!(context > 0, "eval: context must be positive");
    let mut out = Vec::new();
    let mut start = 0;
    while start + 1 < n {
        let len = (context + 1).min(n - start);
        out.push((start, len));
        start += context;
    }
    out
}

/// Mean next-token cross-entropy of `model` over `tokens`, `batch_size`
/// full windows at a time. `None` when there are fewer than two tokens.
pub fn evaluate(model: &GPTModel, tokens: &[u32], context: usize, batch_size: usize) -> Option<EvalResult> {
    let context = context.min(model.config.context_length);
    let wins = windows(tokens.len(), context);
    if wins.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut count = 0usize;
    // Windows of equal length batch together; the short last one runs alone.
    let mut i = 0;
    while i < wins.len() {
        let len = wins[i].1;
        let mut j = i;
        while j < wins.len() && j - i < batch_size.max(1) && wins[j].1 == len {
            j += 1;
        }
        let rows = j - i;
        let (mut x, mut y) = (Vec::with_capacity(rows * (len - 1)), Vec::with_capacity(rows * (len - 1)));
        for &(start, _) in &wins[i..j] {
            let w = &tokens[start..start + len];
            x.extend(w[..len - 1].iter().map(|&t| t as i64));
            y.extend(w[1..].iter().map(|&t| t as i64));
        }
        let x = Tensor::from_vec(x, [rows, len - 1]).unwrap();
        let y = Tensor::from_vec(y, [rows, len - 1]).unwrap();
        let predicted = rows * (len - 1);
        let loss = no_grad(|| cross_entropy(&model.forward(&x), &y)).item();
        total += loss * predicted as f64;
        count += predicted;
        i = j;
    }
    let loss = total / count as f64;
    Some(EvalResult { loss, perplexity: loss.exp(), tokens: count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_prediction_once() {
        assert_eq!(windows(10, 4), vec![(0, 5), (4, 5), (8, 2)]);
        assert_eq!(windows(9, 4), vec![(0, 5), (4, 5)]);
        assert_eq!(windows(1, 4), vec![]);
        let predicted: usize = windows(1000, 7).iter().map(|w| w.1 - 1).sum();
        assert_eq!(predicted, 999);
    }
}
