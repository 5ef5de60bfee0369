//! Reductions of host tensors: along one dimension, and of everything.
//!
//! Reducing `dim` of a `[2, 3, 4]` tensor gives `[2, 4]` (or `[2, 1, 4]` with
//! `keepdim`). The layout trick: move `dim` to the end (a free permutation),
//! and every output element is then the reduction of one row. Each row is
//! reduced left to right by one thread, so the result never depends on how
//! rows were shared out. Float sums accumulate in f64.

use rayon::prelude::*;

use crate::dtype::Element;
use crate::ops::reduce::ReduceOp;
use crate::shape::Shape;
use crate::tensor::{Tensor, PARALLEL_ELEMS};

pub(crate) fn reduce(x: &Tensor, d: usize, keepdim: bool, op: ReduceOp) -> Tensor {
    match op {
        ReduceOp::Sum => {
            if let Some(out) = sum_across_rows(x, d, keepdim) {
                return out;
            }
            crate::with_type!(x.dtype(), T => {
                reduce_rows::<T, T>(x, d, keepdim, |row| T::from_f64(row.fold(0.0, |s, v| s + v.to_f64())))
            })
        }
        ReduceOp::Mean => {
            let n = x.dims()[d].max(1) as f64;
            float_reduce(x, d, keepdim, move |row| row.sum::<f64>() / n)
        }
        ReduceOp::Var { unbiased } => float_reduce(x, d, keepdim, move |row| {
            let v: Vec<f64> = row.collect();
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
            ss / if unbiased { n - 1.0 } else { n }
        }),
        ReduceOp::Max => crate::with_type!(x.dtype(), T => reduce_rows::<T, T>(x, d, keepdim, |row| {
            row.fold(None, |m: Option<T>, v| Some(match m { Some(m) if !(v > m) && !v.to_f64().is_nan() => m, _ => v }))
                .expect("max: empty dimension")
        })),
        ReduceOp::Min => crate::with_type!(x.dtype(), T => reduce_rows::<T, T>(x, d, keepdim, |row| {
            row.fold(None, |m: Option<T>, v| Some(match m { Some(m) if !(v < m) && !v.to_f64().is_nan() => m, _ => v }))
                .expect("min: empty dimension")
        })),
        ReduceOp::ArgMax => crate::with_type!(x.dtype(), T => reduce_rows::<T, i64>(x, d, keepdim, |row| {
            let mut best: Option<(usize, T)> = None;
            for (i, v) in row.enumerate() {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            best.expect("argmax: empty dimension").0 as i64
        })),
        ReduceOp::ArgMin => crate::with_type!(x.dtype(), T => reduce_rows::<T, i64>(x, d, keepdim, |row| {
            let mut best: Option<(usize, T)> = None;
            for (i, v) in row.enumerate() {
                if best.is_none_or(|(_, b)| v < b) {
                    best = Some((i, v));
                }
            }
            best.expect("argmin: empty dimension").0 as i64
        })),
    }
}

/// A reduction computed in f64 and stored in the (float) dtype of `x`.
fn float_reduce(
    x: &Tensor,
    d: usize,
    keepdim: bool,
    f: impl Fn(&mut dyn Iterator<Item = f64>) -> f64 + Sync + Send,
) -> Tensor {
    crate::with_type!(x.dtype(), T => {
        reduce_rows::<T, T>(x, d, keepdim, |row| T::from_f64(f(&mut row.map(|v| v.to_f64()))))
    })
}

/// Reduces each row (along `d`) with `f(row_values) -> value`.
fn reduce_rows<T: Element, U: Element>(
    x: &Tensor,
    d: usize,
    keepdim: bool,
    f: impl Fn(&mut dyn Iterator<Item = T>) -> U + Sync + Send,
) -> Tensor {
    let moved = x.layout().move_dim_last(d);
    let (n, stride) = moved.row();
    let rows = moved.row_offsets();
    let buf = x.storage_slice::<T>();
    let reduce_one = |&start: &usize| f(&mut (0..n).map(|j| buf[start + j * stride]));
    let out: Vec<U> = if x.numel() >= PARALLEL_ELEMS {
        rows.par_iter().map(reduce_one).collect()
    } else {
        rows.iter().map(reduce_one).collect()
    };
    let mut dims = x.dims().to_vec();
    if keepdim {
        dims[d] = 1;
    } else {
        dims.remove(d);
    }
    // Rows of an empty dim: fill each output with f of an empty row.
    let out = if rows.is_empty() && !dims.is_empty() && Shape(dims.clone()).numel() > 0 {
        vec![f(&mut std::iter::empty()); Shape(dims.clone()).numel()]
    } else {
        out
    };
    Tensor::from_contiguous(out, dims)
}

/// The fast path of `sum` for a dense float tensor reduced along a dim
/// that is not the last (a bias gradient sums `[M, N]` over M): viewed
/// as `[outer, n, inner]`, whole rows of `inner` values are added into
/// f64 accumulators, reading memory in order instead of one strided
/// column per output. Each output still adds its n values first to last,
/// so the result is bit for bit the general path's.
fn sum_across_rows(x: &Tensor, d: usize, keepdim: bool) -> Option<Tensor> {
    let inner: usize = x.dims()[d + 1..].iter().product();
    if inner < 2 || !x.is_contiguous() || !matches!(x.dtype(), crate::DType::F32 | crate::DType::F64) {
        return None;
    }
    let (outer, n) = (x.dims()[..d].iter().product::<usize>(), x.dims()[d]);
    let mut dims = x.dims().to_vec();
    if keepdim {
        dims[d] = 1;
    } else {
        dims.remove(d);
    }
    Some(crate::with_float_type!(x.dtype(), "sum", T => {
        let xs = x.contiguous_data::<T>();
        // Tasks own a block of consecutive outputs of one outer index,
        // one block per thread: each of the n rows is then read as one
        // contiguous run of the block's width, which the hardware
        // prefetcher follows. (Blocks of 64 outputs read 256 bytes per
        // row, one row per 4 KiB page of a wide gradient, and waited on
        // memory for every row.) The f64 accumulators stay in L1.
        let threads = if x.numel() >= PARALLEL_ELEMS { rayon::current_num_threads() } else { 1 };
        let block = inner.div_ceil(threads).next_multiple_of(16).min(inner);
        let blocks = inner.div_ceil(block);
        let mut out = crate::pool::zeroed::<T>(outer * inner);
        let work = |(task, o): (usize, &mut [T])| {
            let (outer_i, start) = (task / blocks, (task % blocks) * block);
            let mut acc = vec![0.0f64; o.len()];
            let row = |i: usize| &xs[(outer_i * n + i) * inner + start..][..o.len()];
            // ROWS rows at a time, 16 columns at a time held in
            // registers: each accumulator is loaded and stored once per
            // ROWS rows instead of once per row, and still adds its rows
            // first to last.
            const ROWS: usize = 8;
            for i0 in (0..n).step_by(ROWS) {
                let rows = i0..(i0 + ROWS).min(n);
                let mut columns = acc.chunks_exact_mut(16);
                for (c, a) in (&mut columns).enumerate() {
                    let mut sums: [f64; 16] = a.try_into().unwrap();
                    for i in rows.clone() {
                        for (s, v) in sums.iter_mut().zip(&row(i)[16 * c..16 * c + 16]) {
                            *s += v.to_f64();
                        }
                    }
                    a.copy_from_slice(&sums);
                }
                let tail = columns.into_remainder();
                let first = o.len() - tail.len();
                for i in rows {
                    for (s, v) in tail.iter_mut().zip(&row(i)[first..]) {
                        *s += v.to_f64();
                    }
                }
            }
            for (o, a) in o.iter_mut().zip(acc.iter()) {
                *o = T::from_f64(*a);
            }
        };
        // Blocks never straddle two outer indices: each outer row is cut
        // separately.
        let chunks = out.chunks_mut(inner).flat_map(|row| row.chunks_mut(block));
        if x.numel() >= PARALLEL_ELEMS {
            chunks.collect::<Vec<_>>().into_par_iter().enumerate().for_each(work);
        } else {
            chunks.enumerate().for_each(work);
        }
        Tensor::from_contiguous(out, dims)
    }))
}

/// Sum of every element, as a rank-0 tensor (fixed chunking: the same
/// bits whatever the thread count).
pub(crate) fn sum_all(x: &Tensor) -> Tensor {
    crate::with_type!(x.dtype(), T => {
        let data = x.contiguous_data::<T>();
        Tensor::scalar(T::from_f64(kernels::cpu::reduce::sum_f64(&data, |v: T| v.to_f64())))
    })
}

/// Mean of every element, as a rank-0 tensor.
pub(crate) fn mean_all(x: &Tensor) -> Tensor {
    let n = x.numel() as f64;
    crate::with_type!(x.dtype(), T => {
        let data = x.contiguous_data::<T>();
        Tensor::scalar(T::from_f64(kernels::cpu::reduce::sum_f64(&data, |v: T| v.to_f64()) / n))
    })
}

/// Σ x² in f64, with `sum_all`'s fixed chunking.
pub(crate) fn sum_squares(x: &Tensor) -> f64 {
    crate::with_type!(x.dtype(), T => {
        kernels::cpu::reduce::sum_squares_f64(&x.contiguous_data::<T>(), |v: T| v.to_f64())
    })
}
