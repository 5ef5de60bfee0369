//! The gradient of an embedding lookup: rows added back into the table.
//!
//! The forward picked rows: y[k] = W[ids[k]] for N ids, y `[N, C]`. Its
//! gradient sends each row of dY back where it came from:
//! dW `[V, C]` starts at zero and dW[ids[k]] += dY[k]; an id used twice
//! collects both rows, and ids never seen keep a zero row.
//!
//! Parallel and still deterministic: the work is split by columns, not by
//! tokens. Each task owns a band of the C columns for every token, so no two
//! tasks touch the same element, and each element sums its contributions in
//! token order whatever the number of threads.

use num_traits::Float;
use rayon::prelude::*;

use super::SendPtr;

/// Columns per task.
const BAND: usize = 64;

/// dw `[vocab, c]` += the rows of dy `[ids.len(), c]` at `ids`.
pub fn embedding_backward<T: Float + Send + Sync>(ids: &[usize], dy: &[T], dw: &mut [T], c: usize) {
    assert_eq!(
        dy.len(),
        ids.len() * c,
        "embedding backward: {} gradient values for {} ids of width {c}",
        dy.len(),
        ids.len()
    );
    let vocab = dw.len() / c.max(1);
    assert!(ids.iter().all(|&i| i < vocab), "embedding backward: an id is outside the table of {vocab} rows");
    let dw_ptr = SendPtr(dw.as_mut_ptr());
    (0..c.div_ceil(BAND)).into_par_iter().for_each(|band| {
        let (start, end) = (band * BAND, ((band + 1) * BAND).min(c));
        let base = dw_ptr;
        for (k, &id) in ids.iter().enumerate() {
            let src = &dy[k * c + start..k * c + end];
            // SAFETY: row `id` < vocab, and columns start..end of it belong to
            // this task alone; dw is borrowed mutably for the whole loop.
            let dst = unsafe { std::slice::from_raw_parts_mut(base.0.add(id * c + start), end - start) };
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = *d + s;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ids_accumulate_in_order() {
        let c = 130;
        let ids = [3, 1, 3, 0];
        let dy: Vec<f64> = (0..ids.len() * c).map(|i| i as f64 * 0.5).collect();
        let mut dw = vec![0.0; 5 * c];
        embedding_backward(&ids, &dy, &mut dw, c);
        for j in 0..c {
            assert_eq!(dw[3 * c + j], dy[j] + dy[2 * c + j]);
            assert_eq!(dw[c + j], dy[c + j]);
            assert_eq!(dw[j], dy[3 * c + j]);
            assert_eq!(dw[2 * c + j], 0.0);
        }
    }
}
