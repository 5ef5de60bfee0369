//! Where attention's operands are and which keys each query sees: the
//! mask ([`CausalMask`]: causal, with a KV-cache offset and a sliding
//! window), the sizes of one fused call ([`AttentionDims`]), and where the
//! heads of Q, K, V and their gradients lie in a buffer ([`HeadLayout`]:
//! dense `[heads, T, D]`, a KV cache's spaced-out heads, or columns of the
//! packed `[B, T, (H + 2·Hkv)·D]` projection). The kernels in
//! `attention.rs` read every operand through these.

use std::ops::Range;

use crate::cpu::gemm::Strided;

/// Which keys each query sees: the one place where positions become the
/// mask. Queries are the last tq of tk positions, so query row i is at
/// position p = i + past (past = tk − tq: the keys a KV cache holds before
/// the first query). It sees key j when
///   j ≤ p                 (causal), and
///   p − window < j        (sliding window, when there is one),
/// that is the last `window` positions up to and including its own, the
/// convention of Mistral's `sliding_window` in transformers (a key is
/// masked when p − j ≥ window). Both bounds rise with i, so a block of
/// consecutive rows sees one contiguous range of keys, and a block of
/// consecutive keys is seen by one contiguous range of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CausalMask {
    /// Keys before the first query.
    pub past: usize,
    /// At most this many keys per query (≥ 1), or all earlier ones.
    pub window: Option<usize>,
}

impl CausalMask {
    /// The keys query row i sees.
    pub fn keys(&self, i: usize) -> Range<usize> {
        let end = i + self.past + 1;
        let start = self.window.map_or(0, |w| end.saturating_sub(w));
        start..end
    }

    /// The keys any of the (non-empty) query rows `rows` sees.
    pub fn keys_of_rows(&self, rows: Range<usize>) -> Range<usize> {
        self.keys(rows.start).start..self.keys(rows.end - 1).end
    }

    /// The query rows (of tq) that see key j.
    pub fn queries(&self, j: usize, tq: usize) -> Range<usize> {
        let start = j.saturating_sub(self.past).min(tq);
        let end = self.window.map_or(tq, |w| (j + w).saturating_sub(self.past).min(tq));
        start..end.max(start)
    }

    /// The query rows (of tq) that see any of the (non-empty) keys `keys`.
    pub fn queries_of_keys(&self, keys: Range<usize>, tq: usize) -> Range<usize> {
        let (first, last) = (self.queries(keys.start, tq), self.queries(keys.end - 1, tq));
        first.start..last.end.max(first.start)
    }
}

/// The sizes of one fused call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDims {
    /// Query heads, counted over the batch (batch × n_heads).
    pub heads: usize,
    /// Query heads that share one key/value head (n_heads / n_kv_heads;
    /// 1 without grouping). Query head h reads key/value head h / group,
    /// so K and V hold heads / group heads.
    pub group: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    /// The sliding window of [`CausalMask`], if any.
    pub window: Option<usize>,
    /// Soft-capping of the scaled scores, cap · tanh(S / cap), if any.
    pub softcap: Option<f64>,
}

impl AttentionDims {
    /// Plain causal attention: one key/value head per query head, no window.
    pub fn causal(heads: usize, tq: usize, tk: usize, d: usize) -> Self {
        AttentionDims { heads, group: 1, tq, tk, d, window: None, softcap: None }
    }

    pub fn kv_heads(&self) -> usize {
        self.heads / self.group
    }

    pub fn mask(&self) -> CausalMask {
        CausalMask { past: self.tk - self.tq, window: self.window }
    }

    pub(super) fn check(&self) {
        let AttentionDims { heads, group, tq, tk, .. } = *self;
        assert!(tq <= tk, "attention: {tq} queries cannot follow {tk} keys causally");
        assert!(group > 0 && heads % group == 0, "attention: {heads} query heads in groups of {group}");
        assert!(self.window != Some(0), "attention: a sliding window must hold at least one key");
        assert!(self.softcap.is_none_or(|c| c > 0.0), "attention: a soft-cap must be positive, got {:?}", self.softcap);
    }
}

/// Where the heads of one operand lie in its buffer. Head h (counting
/// batch-major, h = batch·n_heads + head), row i, column c is at
/// `offset + (h / n_heads)·batch_stride + (h % n_heads)·head_stride +
/// i·row_stride + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    pub offset: usize,
    pub batch_stride: usize,
    pub head_stride: usize,
    pub row_stride: usize,
    pub n_heads: usize,
}

impl HeadLayout {
    /// Dense `[heads, rows, d]`.
    pub fn dense(rows: usize, d: usize) -> Self {
        HeadLayout { offset: 0, batch_stride: rows * d, head_stride: 0, row_stride: d, n_heads: 1 }
    }

    /// Heads of d columns side by side in rows of `width` (`[B, T, width]`),
    /// the first head starting at column `column`: Q, K or V inside the
    /// packed qkv projection (width (H + 2·Hkv)·D, column 0, H·D or
    /// (H + Hkv)·D), or a `[B, T, H·D]` attention output.
    pub fn packed(t: usize, n_heads: usize, d: usize, width: usize, column: usize) -> Self {
        HeadLayout { offset: column, batch_stride: t * width, head_stride: d, row_stride: width, n_heads }
    }

    /// Where head h's row 0 starts.
    pub fn start(&self, h: usize) -> usize {
        self.offset + (h / self.n_heads) * self.batch_stride + (h % self.n_heads) * self.head_stride
    }

    /// Head h's `[rows, d]` block as a GEMM operand.
    pub(super) fn operand(&self, h: usize) -> Strided {
        Strided::row_major(self.start(h), self.row_stride)
    }

    /// Panics unless `heads` blocks of `[rows, d]` fit in `len` elements.
    pub(super) fn check(&self, heads: usize, rows: usize, d: usize, len: usize, what: &str) {
        if heads == 0 || rows == 0 {
            return;
        }
        let end = (0..heads).map(|h| self.start(h)).max().unwrap_or(0) + (rows - 1) * self.row_stride + d;
        assert!(end <= len, "attention: {what} {self:?} needs {end} elements, the buffer holds {len}");
        assert!(d <= self.row_stride, "attention: {what} rows of {d} overlap at stride {}", self.row_stride);
    }
}
