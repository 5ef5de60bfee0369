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

use tensor::Tensor;

/// Keys and values of one layer. Each is a buffer `[B, H, capacity, D]`
/// of which the first `len` positions are filled; a new token's key and
/// value are written into the next free row in place, and attention reads
/// the filled part as a view. The buffer doubles when full, so appending n
/// tokens copies O(n) rows in all, not O(n²) as re-concatenating would.
#[derive(Default)]
pub struct LayerCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
    len: usize,
}

impl LayerCache {
    /// Appends new `[B, H, T_new, D]` keys and values and returns all of
    /// them, `[B, H, T_cached + T_new, D]` (views of the cache's buffers).
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let (start, added) = (self.len, k.dim(2));
        self.len += added;
        let len = self.len;
        let write = |buffer: &mut Option<Tensor>, new: &Tensor| {
            let buf = buffer
                .get_or_insert_with(|| Tensor::zeros_on(with_positions(new, len.max(16)), new.dtype(), new.device()));
            if buf.dim(2) < len {
                *buf = grown(buf, start, with_positions(new, (2 * buf.dim(2)).max(len)));
            }
            // In place (the buffer is not shared: the views handed out by
            // `append` are dropped after each step; if one is still alive,
            // the buffer is copied first and the view keeps its contents).
            buf.write_window_(2, start, new);
            buf.narrow(2, 0, len)
        };
        (write(&mut self.keys, k), write(&mut self.values, v))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// `t`'s shape with `positions` along dim 2.
fn with_positions(t: &Tensor, positions: usize) -> Vec<usize> {
    let mut dims = t.dims().to_vec();
    dims[2] = positions;
    dims
}

/// A bigger buffer holding the first `filled` positions of `old`.
fn grown(old: &Tensor, filled: usize, dims: Vec<usize>) -> Tensor {
    let mut bigger = Tensor::zeros_on(dims, old.dtype(), old.device());
    bigger.write_window_(2, 0, &old.narrow(2, 0, filled));
    bigger
}

/// One [`LayerCache`] per block, and the number of positions they hold.
pub struct KvCache {
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        KvCache { layers: (0..n_layers).map(|_| LayerCache::default()).collect() }
    }

    /// Positions cached so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = LayerCache::default());
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
}
