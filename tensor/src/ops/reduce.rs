//! Reductions along a dimension: sum, mean, max/min, argmax/argmin, var.
//!
//! Reducing `dim` of a `[2, 3, 4]` tensor gives `[2, 4]` (or `[2, 1, 4]` with
//! `keepdim`). The layout trick: move `dim` to the end (a free permutation),
//! and every output element is then the reduction of one row. Each row is
//! reduced left to right by one thread, so the result never depends on how
//! rows were shared out. Float sums accumulate in f64.

use rayon::prelude::*;

use crate::dtype::Element;
use crate::shape::Shape;
use crate::tensor::{Tensor, PARALLEL_ELEMS};

impl Tensor {
    /// Reduces each row (along `dim`) with `f(row_values) -> value`.
    fn reduce_rows<T: Element, U: Element>(
        &self,
        dim: isize,
        keepdim: bool,
        op: &str,
        f: impl Fn(&mut dyn Iterator<Item = T>) -> U + Sync + Send,
    ) -> Tensor {
        let d = self.layout().resolve(dim, op);
        let moved = self.layout().move_dim_last(d);
        let (n, stride) = moved.row();
        let rows = moved.row_offsets();
        let buf = self.storage_slice::<T>();
        let reduce_one = |&start: &usize| f(&mut (0..n).map(|j| buf[start + j * stride]));
        let out: Vec<U> = if self.numel() >= PARALLEL_ELEMS {
            rows.par_iter().map(reduce_one).collect()
        } else {
            rows.iter().map(reduce_one).collect()
        };
        let mut dims = self.dims().to_vec();
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

    /// Sum along `dim`.
    pub fn sum(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, dim, keepdim, crate::cuda::ReduceOp::Sum);
        }
        if let Some(out) = self.sum_across_rows(dim, keepdim) {
            return out;
        }
        crate::with_type!(self.dtype(), T => {
            self.reduce_rows::<T, T>(dim, keepdim, "sum", |row| T::from_f64(row.fold(0.0, |s, v| s + v.to_f64())))
        })
    }

    /// The fast path of `sum` for a dense float tensor reduced along a dim
    /// that is not the last (a bias gradient sums `[M, N]` over M): viewed
    /// as `[outer, n, inner]`, whole rows of `inner` values are added into
    /// f64 accumulators, reading memory in order instead of one strided
    /// column per output. Each output still adds its n values first to last,
    /// so the result is bit for bit the general path's.
    fn sum_across_rows(&self, dim: isize, keepdim: bool) -> Option<Tensor> {
        let d = self.layout().resolve(dim, "sum");
        let inner: usize = self.dims()[d + 1..].iter().product();
        if inner < 2 || !self.is_contiguous() || !matches!(self.dtype(), crate::DType::F32 | crate::DType::F64) {
            return None;
        }
        let (outer, n) = (self.dims()[..d].iter().product::<usize>(), self.dims()[d]);
        let mut dims = self.dims().to_vec();
        if keepdim {
            dims[d] = 1;
        } else {
            dims.remove(d);
        }
        Some(crate::with_float_type!(self.dtype(), "sum", T => {
            let x = self.contiguous_data::<T>();
            // Tasks own a block of consecutive outputs of one outer index,
            // one block per thread: each of the n rows is then read as one
            // contiguous run of the block's width, which the hardware
            // prefetcher follows. (Blocks of 64 outputs read 256 bytes per
            // row, one row per 4 KiB page of a wide gradient, and waited on
            // memory for every row.) The f64 accumulators stay in L1.
            let threads = if self.numel() >= PARALLEL_ELEMS { rayon::current_num_threads() } else { 1 };
            let block = inner.div_ceil(threads).next_multiple_of(16).min(inner);
            let blocks = inner.div_ceil(block);
            let mut out = crate::pool::zeroed::<T>(outer * inner);
            let work = |(task, o): (usize, &mut [T])| {
                let (outer_i, start) = (task / blocks, (task % blocks) * block);
                let mut acc = vec![0.0f64; o.len()];
                let row = |i: usize| &x[(outer_i * n + i) * inner + start..][..o.len()];
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
            if self.numel() >= PARALLEL_ELEMS {
                chunks.collect::<Vec<_>>().into_par_iter().enumerate().for_each(work);
            } else {
                chunks.enumerate().for_each(work);
            }
            Tensor::from_contiguous(out, dims)
        }))
    }

    /// Mean along `dim`.
    pub fn mean(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, dim, keepdim, crate::cuda::ReduceOp::Mean);
        }
        let n = self.dim(dim).max(1) as f64;
        self.float_reduce("mean", move |row| row.sum::<f64>() / n, dim, keepdim)
    }

    /// Variance along `dim`; `unbiased` divides by n−1 (PyTorch's default)
    /// instead of n.
    pub fn var(&self, dim: isize, keepdim: bool, unbiased: bool) -> Tensor {
        if self.device().is_cuda() {
            let op = if unbiased { crate::cuda::ReduceOp::VarUnbiased } else { crate::cuda::ReduceOp::Var };
            return crate::cuda::reduce(self, dim, keepdim, op);
        }
        self.float_reduce(
            "var",
            move |row| {
                let v: Vec<f64> = row.collect();
                let n = v.len() as f64;
                let mean = v.iter().sum::<f64>() / n;
                let ss: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
                ss / if unbiased { n - 1.0 } else { n }
            },
            dim,
            keepdim,
        )
    }

    fn float_reduce(
        &self,
        op: &str,
        f: impl Fn(&mut dyn Iterator<Item = f64>) -> f64 + Sync + Send,
        dim: isize,
        keepdim: bool,
    ) -> Tensor {
        assert!(self.dtype().is_float(), "{op}: needs a float tensor, got {}", self.dtype());
        crate::with_type!(self.dtype(), T => {
            self.reduce_rows::<T, T>(dim, keepdim, op, |row| T::from_f64(f(&mut row.map(|v| v.to_f64()))))
        })
    }

    /// Largest value along `dim`.
    pub fn max(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, dim, keepdim, crate::cuda::ReduceOp::Max);
        }
        crate::with_type!(self.dtype(), T => self.reduce_rows::<T, T>(dim, keepdim, "max", |row| {
            row.fold(None, |m: Option<T>, v| Some(match m { Some(m) if !(v > m) && !v.to_f64().is_nan() => m, _ => v }))
                .expect("max: empty dimension")
        }))
    }

    /// Smallest value along `dim`.
    pub fn min(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, dim, keepdim, crate::cuda::ReduceOp::Min);
        }
        crate::with_type!(self.dtype(), T => self.reduce_rows::<T, T>(dim, keepdim, "min", |row| {
            row.fold(None, |m: Option<T>, v| Some(match m { Some(m) if !(v < m) && !v.to_f64().is_nan() => m, _ => v }))
                .expect("min: empty dimension")
        }))
    }

    /// Index (int64) of the largest value along `dim`; the first on ties.
    pub fn argmax(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, dim, keepdim, crate::cuda::ReduceOp::ArgMax);
        }
        crate::with_type!(self.dtype(), T => self.reduce_rows::<T, i64>(dim, keepdim, "argmax", |row| {
            let mut best: Option<(usize, T)> = None;
            for (i, v) in row.enumerate() {
                if best.is_none_or(|(_, b)| v > b) {
                    best = Some((i, v));
                }
            }
            best.expect("argmax: empty dimension").0 as i64
        }))
    }

    /// Index (int64) of the smallest value along `dim`; the first on ties.
    pub fn argmin(&self, dim: isize, keepdim: bool) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::reduce(self, dim, keepdim, crate::cuda::ReduceOp::ArgMin);
        }
        crate::with_type!(self.dtype(), T => self.reduce_rows::<T, i64>(dim, keepdim, "argmin", |row| {
            let mut best: Option<(usize, T)> = None;
            for (i, v) in row.enumerate() {
                if best.is_none_or(|(_, b)| v < b) {
                    best = Some((i, v));
                }
            }
            best.expect("argmin: empty dimension").0 as i64
        }))
    }

    /// Sum of every element, as a rank-0 tensor (fixed chunking: the same
    /// bits whatever the thread count).
    pub fn sum_all(&self) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::sum_all(self, 1.0);
        }
        crate::with_type!(self.dtype(), T => {
            let data = self.contiguous_data::<T>();
            Tensor::scalar(T::from_f64(kernels::cpu::reduce::sum_f64(&data, |v: T| v.to_f64())))
        })
    }

    /// Mean of every element, as a rank-0 tensor.
    pub fn mean_all(&self) -> Tensor {
        if self.device().is_cuda() {
            return crate::cuda::mean_all(self);
        }
        assert!(self.dtype().is_float(), "mean_all: needs a float tensor, got {}", self.dtype());
        let n = self.numel() as f64;
        crate::with_type!(self.dtype(), T => {
            let data = self.contiguous_data::<T>();
            Tensor::scalar(T::from_f64(kernels::cpu::reduce::sum_f64(&data, |v: T| v.to_f64()) / n))
        })
    }

    /// Largest element, as a rank-0 tensor.
    pub fn max_all(&self) -> Tensor {
        self.flatten_all().max(0, false)
    }

    /// Sums over the given dimensions (kept as size 1).
    pub fn sum_keepdims(&self, dims: &[usize]) -> Tensor {
        dims.iter().fold(self.clone(), |t, &d| t.sum(d as isize, true))
    }

    /// Sums a broadcast result back down to `shape`: the gradient of an
    /// operand that was broadcast is the sum over the dimensions it was
    /// repeated along.
    pub fn sum_to_shape(&self, shape: &Shape) -> Tensor {
        if self.shape() == shape {
            return self.clone();
        }
        let lead = self.rank() - shape.rank();
        let mut dims: Vec<usize> = (0..lead).collect();
        for (i, &d) in shape.dims().iter().enumerate() {
            if d == 1 && self.dims()[lead + i] != 1 {
                dims.push(lead + i);
            }
        }
        self.sum_keepdims(&dims).reshape_to(shape.clone())
    }

    /// Number of elements equal to `value` in an integer or mask tensor.
    pub fn count_eq(&self, value: f64) -> usize {
        self.to_f64_vec().iter().filter(|&&v| v == value).count()
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn summing_across_rows_matches_the_strided_path_bit_for_bit() {
        let mut g = Generator::seed(11);
        for dims in [[3usize, 700, 600], [2, 5, 7], [1, 1300, 3]] {
            let x = Tensor::randn(dims, &mut g);
            for d in 0..2 {
                let fast = x.sum(d as isize, false);
                // Moving the summed dim last forces the general path.
                let slow = x.transpose(d, 2).contiguous().sum(2, false);
                let slow = if d == 0 { slow.t() } else { slow };
                assert_eq!(fast.dims(), slow.dims());
                assert_eq!(fast.to_vec::<f32>(), slow.to_vec::<f32>(), "dims {dims:?}, sum over {d}");
            }
        }
    }

    #[test]
    fn reductions_along_any_dim() {
        let x = Tensor::arange(0, 24).reshape(&[2, 3, 4]).to_dtype(DType::F64);
        let s = x.sum(1, false);
        assert_eq!(s.dims(), &[2, 4]);
        assert_eq!(s.to_vec::<f64>()[..4], [12.0, 15.0, 18.0, 21.0]);
        assert_eq!(x.sum(-1, true).dims(), &[2, 3, 1]);
        assert_eq!(x.mean(2, false).to_vec::<f64>()[0], 1.5);
        assert_eq!(x.max(0, false).to_vec::<f64>()[0], 12.0);
        assert_eq!(x.argmax(2, false).to_vec::<i64>(), vec![3; 6]);
        let v = Tensor::new_as([1.0, 2.0, 3.0, 4.0], DType::F64).unwrap();
        assert_eq!(v.var(0, false, true).item::<f64>(), 5.0 / 3.0);
        assert_eq!(v.var(0, false, false).item::<f64>(), 1.25);
        assert_eq!(x.sum_all().item::<f64>(), 276.0);
    }

    #[test]
    fn sum_to_shape_undoes_broadcasting() {
        let g = Tensor::ones([2, 3, 4], DType::F32);
        assert_eq!(g.sum_to_shape(&Shape::from([3, 1])).to_vec::<f32>(), vec![8.0; 3]);
        assert_eq!(g.sum_to_shape(&Shape::from(())).item::<f32>(), 24.0);
    }
}
