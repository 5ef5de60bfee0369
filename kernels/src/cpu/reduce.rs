//! Deterministic sums.
//!
//! Floating-point addition is not associative, so a sum split across threads
//! in whatever order they finish would change in the last bits from run to
//! run. Here the split is fixed: the input is cut into chunks of
//! [`CHUNK`] elements, each chunk is summed left to right (in f64, so long
//! f32 sums keep their precision), and the chunk sums are added in order.
//! The same input gives the same bits on any number of threads.

use rayon::prelude::*;

/// Elements per chunk; also the threshold below which one thread sums alone.
pub const CHUNK: usize = 1 << 14;

/// Sum of `values` (each converted with `to_f64`) with a fixed chunking.
pub fn sum_f64<T: Copy + Sync>(values: &[T], to_f64: impl Fn(T) -> f64 + Sync) -> f64 {
    let chunk_sum = |chunk: &[T]| chunk.iter().fold(0.0f64, |acc, &v| acc + to_f64(v));
    if values.len() <= CHUNK {
        return chunk_sum(values);
    }
    let partials: Vec<f64> = values.par_chunks(CHUNK).map(chunk_sum).collect();
    partials.iter().sum()
}

/// Sum of squares, with the same chunking; gradient clipping uses it.
pub fn sum_squares_f64<T: Copy + Sync>(values: &[T], to_f64: impl Fn(T) -> f64 + Sync) -> f64 {
    sum_f64(values, |v| {
        let x = to_f64(v);
        x * x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_sum_is_exact_on_integers_and_independent_of_threads() {
        let v: Vec<f32> = (0..100_000).map(|i| (i % 7) as f32).collect();
        let want: f64 = v.iter().map(|&x| x as f64).sum();
        assert_eq!(sum_f64(&v, |x| x as f64), want);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let noisy: Vec<f32> = (0..100_000).map(|i| (i as f32 * 0.1).sin()).collect();
        let one = pool.install(|| sum_f64(&noisy, |x| x as f64));
        assert_eq!(one.to_bits(), sum_f64(&noisy, |x| x as f64).to_bits());
    }
}
