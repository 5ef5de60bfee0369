//! The KV cache: keys and values of the positions already processed.
//!
//! Without it, generating token n+1 reruns attention over all n previous
//! tokens, recomputing keys and values that have not changed. With it, each
//! step feeds only the new token: its key and value are appended, and its
//! query attends to everything cached. Results are identical; the cost per
//! token drops from the whole sequence to one position.

use tensor::Tensor;

/// Keys and values of one layer, `[B, H, T_cached, D]` each.
#[derive(Default)]
pub struct LayerCache {
    keys: Option<Tensor>,
    values: Option<Tensor>,
}

impl LayerCache {
    /// Appends new `[B, H, T_new, D]` keys and values and returns all of
    /// them.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
        let join = |old: &Option<Tensor>, new: &Tensor| match old {
            Some(old) => Tensor::cat(&[old.clone(), new.contiguous()], 2),
            None => new.contiguous(),
        };
        let (keys, values) = (join(&self.keys, k), join(&self.values, v));
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        (keys, values)
    }

    pub fn len(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.dim(2))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
