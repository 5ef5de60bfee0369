//! The KV cache: keys and values of the positions already processed.
//!
//! Without it, generating token n+1 reruns attention over all n previous
//! tokens, recomputing keys and values that have not changed. With it, each
//! step feeds only the new token: its key and value are appended, and its
//! query attends to everything cached. Results are identical; the cost per
//! token drops from the whole sequence to one position.
//!
//! Shapes: per layer, keys and values `[B, Hkv, T, D]` (batch, key/value
//! heads, positions, head size), stored in buffers with room to grow. Hkv
//! is the attention's `n_kv_heads`: H for GPT-2, fewer with grouped-query
//! attention, which is where that saves memory (the cache holds Hkv heads,
//! not one per query head).
//!
//! A layer with a sliding window (Mistral) never looks further back than
//! its window, so its cache keeps only the last `window − 1` positions
//! before each step's new ones (a rolling buffer): generating past the
//! window takes bounded memory, and gives the same tokens.

use tensor::Tensor;

/// Keys and values of one layer. Each is a buffer `[B, H, capacity, D]`
/// whose rows `start .. start + stored` hold the kept positions; a new
/// token's key and value are written into the next free row in place, and
/// attention reads the kept part as a view. When the buffer is full it is
/// replaced by one twice the size of what is kept (so appending n tokens
/// copies O(n) rows in all, not O(n²) as re-concatenating would); with a
/// window, the positions it has passed are dropped at that moment.
#[derive(Default)]
pub struct LayerCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    /// The first kept row of the buffers, and how many are kept.
    start: usize,
    stored: usize,
    /// Positions seen in all (the position of the next token).
    seen: usize,
    /// Each query attends to at most this many keys, its own included.
    window: Option<usize>,
}

impl LayerCache {
    /// A cache for a layer whose queries see at most `window` keys
    /// (`None`: all of them).
    pub fn with_window(window: Option<usize>) -> Self {
        LayerCache { window, ..LayerCache::default() }
    }

    /// Appends new `[B, H, T_new, D]` keys and values and returns the keys
    /// and values the new queries attend to, `[B, H, T_kept + T_new, D]`
    /// (views of the cache's buffers), the new ones last.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let added = k.dim(2);
        // With a window, the oldest new query (at position `seen`) looks
        // back `window − 1` keys at most: older ones are never read again.
        if let Some(window) = self.window {
            let keep = self.stored.min(window - 1);
            self.start += self.stored - keep;
            self.stored = keep;
        }
        let (start, kept) = (self.start, self.stored);
        let needed = kept + added;
        let full = self.keys.as_ref().is_some_and(|b| start + needed > b.dim(2));
        if full || self.keys.is_none() {
            // A fresh buffer with the kept rows at its start.
            let capacity = (2 * needed).max(16);
            let fresh = |old: &Option<Tensor>, new: &Tensor| {
                let mut buf = Tensor::zeros_on(with_positions(new, capacity), new.dtype(), new.device());
                if let Some(old) = old {
                    buf.write_window_(2, 0, &old.narrow(2, start, kept));
                }
                buf
            };
            (self.keys, self.values) = (Some(fresh(&self.keys, k)), Some(fresh(&self.values, v)));
            self.start = 0;
        }
        let at = self.start + kept;
        self.stored = needed;
        self.seen += added;
        let (start, stored) = (self.start, self.stored);
        let write = |buffer: &mut Option<Tensor>, new: &Tensor| {
            let buf = buffer.as_mut().expect("made above");
            // In place (the buffer is not shared: the views handed out by
            // `append` are dropped after each step; if one is still alive,
            // the buffer is copied first and the view keeps its contents).
            buf.write_window_(2, at, new);
            buf.narrow(2, start, stored)
        };
        (write(&mut self.keys, k), write(&mut self.values, v))
    }

    /// Positions seen so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.seen
    }

    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    /// Positions whose keys and values are held (fewer than `len` once a
    /// window has been passed).
    pub fn stored(&self) -> usize {
        self.stored
    }

    /// Bytes of the buffers (both, all their rows).
    pub fn buffer_bytes(&self) -> usize {
        let bytes = |b: &Option<Tensor>| b.as_ref().map_or(0, |t| t.numel() * t.dtype().size_in_bytes());
        bytes(&self.keys) + bytes(&self.values)
    }
}

/// `t`'s shape with `positions` along dim 2.
fn with_positions(t: &Tensor, positions: usize) -> Vec<usize> {
    let mut dims = t.dims().to_vec();
    dims[2] = positions;
    dims
}

/// One [`LayerCache`] per block, and the number of positions they hold.
pub struct KvCache {
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    /// A cache for `n_layers` layers that attend to every earlier position.
    pub fn new(n_layers: usize) -> Self {
        Self::with_windows(vec![None; n_layers])
    }

    /// A cache whose layer i keeps only what window `windows[i]` needs.
    pub fn with_windows(windows: Vec<Option<usize>>) -> Self {
        KvCache { layers: windows.into_iter().map(LayerCache::with_window).collect() }
    }

    /// Positions seen so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = LayerCache::with_window(l.window));
    }

    /// Bytes the cache's buffers take now.
    pub fn buffer_bytes(&self) -> usize {
        self.layers.iter().map(LayerCache::buffer_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::Generator;

    #[test]
    fn appending_in_steps_equals_one_concatenation() {
        let mut g = Generator::seed(3);
        let (k, v) = (Tensor::randn([2, 3, 40, 4], &mut g), Tensor::randn([2, 3, 40, 4], &mut g));
        let mut cache = LayerCache::default();
        // 5, then 1 at a time past the first capacity (16) and its doubling.
        let mut at = 0;
        for step in std::iter::once(5).chain(std::iter::repeat(1).take(35)) {
            let (all_k, all_v) = cache.append(&k.narrow(2, at, step), &v.narrow(2, at, step));
            at += step;
            assert_eq!(all_k.to_vec::<f32>(), k.narrow(2, 0, at).to_vec::<f32>());
            assert_eq!(all_v.to_vec::<f32>(), v.narrow(2, 0, at).to_vec::<f32>());
        }
        assert_eq!(cache.len(), 40);
    }

    #[test]
    fn a_window_keeps_only_what_the_next_queries_read() {
        let mut g = Generator::seed(4);
        let (k, v) = (Tensor::randn([1, 2, 300, 4], &mut g), Tensor::randn([1, 2, 300, 4], &mut g));
        let window = 8;
        let mut cache = LayerCache::with_window(Some(window));
        let mut at = 0;
        let mut largest = 0;
        for step in std::iter::once(20).chain(std::iter::repeat(1).take(270)).chain(std::iter::once(10)) {
            let (all_k, all_v) = cache.append(&k.narrow(2, at, step), &v.narrow(2, at, step));
            at += step;
            // The new positions and the window − 1 before the first of them.
            let from = (at - step).saturating_sub(window - 1);
            assert_eq!(all_k.to_vec::<f32>(), k.narrow(2, from, at - from).to_vec::<f32>(), "at {at}");
            assert_eq!(all_v.to_vec::<f32>(), v.narrow(2, from, at - from).to_vec::<f32>(), "at {at}");
            largest = largest.max(cache.buffer_bytes());
        }
        assert_eq!((cache.len(), cache.stored()), (300, window - 1 + 10));
        // Bounded by twice the most a step needs (20 new + 7 kept, at the
        // start), not by the 300 positions seen.
        assert!(largest <= 2 * 2 * (2 * 27 * 4 * 4), "{largest} bytes");
    }

    /// On a Gemma 3–like model (`nano-gemma`: layer 0 slides with a window
    /// of 16, layer 1 is global), decoding past the window leaves the local
    /// layer holding its window and the global one the whole sequence, in
    /// bounded buffers on the local layer.
    #[test]
    fn decoding_past_the_window_holds_the_window_on_local_layers_only() {
        use crate::model::{GPTConfig, GPTModel, LayerType};
        let config = GPTConfig::preset("nano-gemma").unwrap();
        assert_eq!(config.layer_types, [LayerType::SlidingAttention, LayerType::FullAttention]);
        let window = config.sliding_window.unwrap();
        let model = GPTModel::new(config.clone(), &mut Generator::seed(5));
        let mut cache = model.new_cache();
        let ids = |n: usize, from: usize| {
            Tensor::from_vec((from..from + n).map(|i| (i % 500) as i64).collect(), [1, n]).unwrap()
        };
        // A 10-token prompt, then 40 tokens one at a time: 50 in all, past
        // the window of 16.
        model.forward_cached(&ids(10, 0), &mut cache);
        let mut largest_local = 0;
        for t in 10..50 {
            model.forward_cached(&ids(1, t), &mut cache);
            largest_local = largest_local.max(cache.layers[0].buffer_bytes());
        }
        let held: Vec<usize> = cache.layers.iter().map(LayerCache::stored).collect();
        assert_eq!(held, [window, 50]);
        assert_eq!(cache.len(), 50);
        // K and V, 2 heads of 16, f32: what the held positions take.
        let per_position = 2 * config.kv_width() * 4;
        assert!(largest_local <= 2 * window * per_position, "{largest_local} bytes on the local layer");
        assert!(cache.layers[1].buffer_bytes() >= 50 * per_position);
    }
}
