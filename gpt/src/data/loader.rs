//! Batching windows into tensors: the data loader.
//!
//! Training reads `B` windows at a time and stacks them into two I64
//! tensors of shape `[B, T]` (`T` = `max_length`): `inputs` and `targets`,
//! row `b` of one matching row `b` of the other.
//!
//! Each epoch visits every window once. With `shuffle`, the visiting order
//! is a permutation drawn from `(seed, epoch)`, so epochs differ from each
//! other but a run is reproducible, and batch `k` of epoch `e` can be rebuilt
//! directly (to resume from a checkpoint) without replaying the epochs
//! before it. When the number of windows is not a multiple of `B`, the last
//! batch is smaller, or dropped with `drop_last` (keeping every batch the
//! same shape).

use tensor::Tensor;

use super::{DataError, SlidingWindow};
use tensor::Generator;

/// How a [`DataLoader`] batches its windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Windows per batch (B).
    pub batch_size: usize,
    /// Visit the windows in a seeded random order.
    pub shuffle: bool,
    /// Skip a last batch smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the shuffle.
    pub seed: u64,
}

impl LoaderConfig {
    /// `batch_size` windows per batch, shuffled with seed 123, dropping a short last batch:
    /// the book's training loader.
    pub fn new(batch_size: usize) -> LoaderConfig {
        LoaderConfig { batch_size, shuffle: true, drop_last: true, seed: 123 }
    }
}

/// Yields `(inputs, targets)` batches, each an I64 tensor of shape `[B, T]`.
#[derive(Clone, Debug)]
pub struct DataLoader {
    dataset: SlidingWindow,
    config: LoaderConfig,
}

impl DataLoader {
    /// Fails when `batch_size` is 0, or when `drop_last` would leave no batch.
    pub fn new(dataset: SlidingWindow, config: LoaderConfig) -> Result<DataLoader, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::BadConfig("batch size must be at least 1".into()));
        }
        if config.drop_last && dataset.len() < config.batch_size {
            return Err(DataError::BadConfig(format!(
                "the data makes {} windows of {} tokens, fewer than one batch of {} (drop_last is on)",
                dataset.len(),
                dataset.max_length(),
                config.batch_size
            )));
        }
        Ok(DataLoader { dataset, config })
    }

    pub fn dataset(&self) -> &SlidingWindow {
        &self.dataset
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Number of batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (windows, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last {
            windows / b
        } else {
            windows.div_ceil(b)
        }
    }

    /// The order in which epoch `epoch` visits the windows.
    pub fn order(&self, epoch: u64) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.dataset.len() as u32).collect();
        if self.config.shuffle {
            // Mix the epoch into the seed so every epoch gets its own order.
            let mut rng = Generator::seed(self.config.seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03));
            rng.shuffle(&mut order);
        }
        order
    }

    /// The batches of epoch `epoch`, in order.
    pub fn epoch(&self, epoch: u64) -> Batches<'_> {
        Batches { loader: self, order: self.order(epoch), next: 0, end: self.batches_per_epoch() }
    }

    /// The batches of epoch 0 (like iterating a PyTorch `DataLoader`).
    pub fn iter(&self) -> Batches<'_> {
        self.epoch(0)
    }

    /// Batch `index` of epoch `epoch`, built directly (for resuming).
    pub fn batch(&self, epoch: u64, index: usize) -> (Tensor, Tensor) {
        assert!(index < self.batches_per_epoch(), "batch {index} of {}", self.batches_per_epoch());
        self.build(&self.order(epoch), index)
    }

    /// Part `part` of `parts` equal parts of batch `index` of epoch `epoch`:
    /// its rows `part·B/parts .. (part+1)·B/parts`. Data-parallel rank r of N
    /// reads part r of each global batch of N·B rows, so the ranks together
    /// read exactly the batch one process would.
    pub fn batch_part(&self, epoch: u64, index: usize, part: usize, parts: usize) -> (Tensor, Tensor) {
        let b = self.config.batch_size;
        assert!(b % parts == 0 && part < parts, "part {part} of {parts} of a batch of {b}");
        assert!(index < self.batches_per_epoch(), "batch {index} of {}", self.batches_per_epoch());
        let order = self.order(epoch);
        let rows = &order[index * b..((index + 1) * b).min(order.len())];
        let per_part = b / parts;
        let end = |k: usize| (k * per_part).min(rows.len());
        self.build_rows(&rows[end(part)..end(part + 1)])
    }

    /// The token ids of batch `index` under `order`, as two row-major `[B, T]` buffers.
    pub fn batch_ids(&self, order: &[u32], index: usize) -> (Vec<i64>, Vec<i64>, usize) {
        let b = self.config.batch_size;
        self.row_ids(&order[index * b..((index + 1) * b).min(order.len())])
    }

    /// The token ids of windows `rows`, as two row-major `[rows, T]` buffers.
    fn row_ids(&self, rows: &[u32]) -> (Vec<i64>, Vec<i64>, usize) {
        let t = self.dataset.max_length();
        let mut inputs = Vec::with_capacity(rows.len() * t);
        let mut targets = Vec::with_capacity(rows.len() * t);
        for &w in rows {
            let (x, y) = self.dataset.get(w as usize);
            inputs.extend(x.iter().map(|&id| id as i64));
            targets.extend(y.iter().map(|&id| id as i64));
        }
        (inputs, targets, rows.len())
    }

    fn build(&self, order: &[u32], index: usize) -> (Tensor, Tensor) {
        let b = self.config.batch_size;
        self.build_rows(&order[index * b..((index + 1) * b).min(order.len())])
    }

    fn build_rows(&self, rows: &[u32]) -> (Tensor, Tensor) {
        let (inputs, targets, rows) = self.row_ids(rows);
        let shape = [rows, self.dataset.max_length()];
        let x = Tensor::from_vec(inputs, shape).expect("rows * T ids");
        let y = Tensor::from_vec(targets, shape).expect("rows * T ids");
        (x, y)
    }
}

impl<'a> IntoIterator for &'a DataLoader {
    type Item = (Tensor, Tensor);
    type IntoIter = Batches<'a>;

    fn into_iter(self) -> Batches<'a> {
        self.iter()
    }
}

/// Iterator over one epoch's batches; see [`DataLoader::epoch`].
pub struct Batches<'a> {
    loader: &'a DataLoader,
    order: Vec<u32>,
    next: usize,
    end: usize,
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<(Tensor, Tensor)> {
        if self.next >= self.end {
            return None;
        }
        self.next += 1;
        Some(self.loader.build(&self.order, self.next - 1))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::DType;

    fn loader(n: u32, t: usize, config: LoaderConfig) -> DataLoader {
        DataLoader::new(SlidingWindow::new((0..n).collect(), t, t).unwrap(), config).unwrap()
    }

    #[test]
    fn batches_are_i64_tensors_of_shape_b_t() {
        let config = LoaderConfig { batch_size: 2, shuffle: false, drop_last: false, seed: 0 };
        let dl = loader(9, 2, config); // windows start 0, 2, 4, 6
        let batches: Vec<_> = dl.iter().collect();
        assert_eq!(batches.len(), 2);
        let (x, y) = &batches[0];
        assert_eq!((x.dims(), x.dtype()), (&[2, 2][..], DType::I64));
        assert_eq!(x.to_vec2::<i64>(), [[0, 1], [2, 3]]);
        assert_eq!(y.to_vec2::<i64>(), [[1, 2], [3, 4]]);
        assert_eq!(batches[1].0.to_vec2::<i64>(), [[4, 5], [6, 7]]);
    }

    #[test]
    fn last_batch_is_short_or_dropped() {
        let keep = loader(12, 2, LoaderConfig { batch_size: 2, shuffle: false, drop_last: false, seed: 0 });
        assert_eq!(keep.dataset().len(), 5);
        assert_eq!(keep.batches_per_epoch(), 3);
        assert_eq!(keep.iter().last().unwrap().0.dims(), [1, 2]);
        let drop = loader(12, 2, LoaderConfig { batch_size: 2, shuffle: false, drop_last: true, seed: 0 });
        assert_eq!(drop.batches_per_epoch(), 2);
        assert!(drop.iter().all(|(x, _)| x.dims() == [2, 2]));
    }

    #[test]
    fn shuffle_is_seeded_per_epoch_and_visits_every_window() {
        let dl = loader(101, 1, LoaderConfig { batch_size: 4, shuffle: true, drop_last: false, seed: 42 });
        assert_eq!(dl.order(0), dl.order(0));
        assert_ne!(dl.order(0), dl.order(1));
        let mut firsts: Vec<i64> = dl.epoch(3).flat_map(|(x, _)| x.to_vec::<i64>()).collect();
        firsts.sort_unstable();
        assert_eq!(firsts, (0..100).collect::<Vec<i64>>());
        // Resuming: batch 5 of epoch 3 built directly equals the iterated one.
        let iterated = dl.epoch(3).nth(5).unwrap();
        assert_eq!(dl.batch(3, 5).0.to_vec::<i64>(), iterated.0.to_vec::<i64>());
        let other_seed = loader(101, 1, LoaderConfig { seed: 43, ..*dl.config() });
        assert_ne!(other_seed.order(0), dl.order(0));
    }

    #[test]
    fn the_parts_of_a_batch_are_its_rows_in_order() {
        let dl = loader(101, 1, LoaderConfig { batch_size: 6, shuffle: true, drop_last: true, seed: 7 });
        let whole = dl.batch(2, 3).0.to_vec2::<i64>();
        let parts: Vec<Vec<i64>> = (0..3).flat_map(|p| dl.batch_part(2, 3, p, 3).0.to_vec2::<i64>()).collect();
        assert_eq!(parts, whole);
        assert_eq!(dl.batch_part(2, 3, 1, 3).1.dims(), [2, 1]);
    }

    #[test]
    fn impossible_configs_are_errors() {
        let data = SlidingWindow::new((0..9).collect(), 2, 2).unwrap();
        let zero = LoaderConfig { batch_size: 0, shuffle: false, drop_last: false, seed: 0 };
        assert!(DataLoader::new(data.clone(), zero).is_err());
        let err = DataLoader::new(data, LoaderConfig::new(8)).unwrap_err();
        assert!(err.to_string().contains("4 windows of 2 tokens, fewer than one batch of 8"), "{err}");
    }
}
