//! Row reductions (sum, dot product, maximum) that the compiler can
//! vectorise.
//!
//! `xs.iter().fold(0.0, |s, &x| s + x)` adds in order: each add waits for
//! the one before (about 4 cycles), and since float addition is not
//! associative the compiler may not reorder it, so a 384-wide layer-norm
//! row costs ~1,500 cycles of waiting where the arithmetic needs ~25.
//! Here the row is summed in [`REDUCTION_LANES`] = 16 interleaved partial
//! sums (element i goes to partial i mod 16), which are independent, so one SIMD register
//! holds them all and advances 16 elements per add; the partials are then
//! combined pairwise and the tail past the last whole group is added.
//!
//! The order of additions depends only on the row's length, never on
//! threads or alignment, so results stay reproducible bit for bit. They
//! differ from an in-order sum by rounding only (and are usually closer to
//! the exact sum: pairwise summation's error grows more slowly).
//!
//! These serve the row kernels (softmax, layer norm, attention's rows). The
//! matrix-vector dot products keep a wider order of their own, with fused
//! multiply-adds (`dot_order.rs`).

use num_traits::Float;

use super::math::FastExp;

/// Partial sums a row reduction keeps side by side: one AVX-512 register
/// of f32.
pub const REDUCTION_LANES: usize = 16;

/// Σ f(a_i, b_i) over two equally long rows.
#[inline(always)]
pub fn sum_zip<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> T {
    assert_eq!(a.len(), b.len(), "sum_zip: rows of {} and {}", a.len(), b.len());
    let (a_groups, b_groups) = (a.chunks_exact(REDUCTION_LANES), b.chunks_exact(REDUCTION_LANES));
    let (a_tail, b_tail) = (a_groups.remainder(), b_groups.remainder());
    let mut partial = [T::zero(); REDUCTION_LANES];
    for (x, y) in a_groups.zip(b_groups) {
        for lane in 0..REDUCTION_LANES {
            partial[lane] = partial[lane] + f(x[lane], y[lane]);
        }
    }
    let tail = a_tail.iter().zip(b_tail).fold(T::zero(), |s, (&x, &y)| s + f(x, y));
    combine(partial, |x, y| x + y) + tail
}

/// Σ f(x_i).
#[inline(always)]
pub fn sum_map<T: Float>(xs: &[T], f: impl Fn(T) -> T) -> T {
    sum_zip(xs, xs, |x, _| f(x))
}

/// Σ x_i.
#[inline(always)]
pub fn sum<T: Float>(xs: &[T]) -> T {
    sum_map(xs, |x| x)
}

/// Σ a_i·b_i.
#[inline(always)]
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    sum_zip(a, b, |x, y| x * y)
}

/// Σ exp(v − shift) over a row. The exponentials are taken a block at a
/// time into a small buffer and summed there in SIMD lanes ([`sum`]), both
/// loops the compiler vectorises; the blocks' sums are added in order.
pub fn sum_exp_shifted<T: FastExp>(row: &[T], shift: T) -> T {
    const BLOCK: usize = 256;
    let mut buffer = [T::zero(); BLOCK];
    let mut total = T::zero();
    for block in row.chunks(BLOCK) {
        let exps = &mut buffer[..block.len()];
        for (e, &v) in exps.iter_mut().zip(block) {
            *e = (v - shift).fast_exp();
        }
        total = total + sum(exps);
    }
    total
}

/// max x_i (−∞ for an empty row; a NaN is skipped, as by `Float::max`).
#[inline(always)]
pub fn max<T: Float>(xs: &[T]) -> T {
    let groups = xs.chunks_exact(REDUCTION_LANES);
    let tail = groups.remainder();
    let mut partial = [T::neg_infinity(); REDUCTION_LANES];
    for x in groups {
        for lane in 0..REDUCTION_LANES {
            partial[lane] = partial[lane].max(x[lane]);
        }
    }
    let tail = tail.iter().fold(T::neg_infinity(), |m, &x| m.max(x));
    combine(partial, T::max).max(tail)
}

/// The partials folded pairwise: lanes 0..8 with 8..16, then 0..4 with
/// 4..8, and so on.
#[inline(always)]
fn combine<T: Float>(mut partial: [T; REDUCTION_LANES], op: impl Fn(T, T) -> T) -> T {
    let mut width = REDUCTION_LANES / 2;
    while width > 0 {
        for lane in 0..width {
            partial[lane] = op(partial[lane], partial[lane + width]);
        }
        width /= 2;
    }
    partial[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions_match_their_definitions_at_every_tail_length() {
        for n in [0, 1, 15, 16, 17, 40, 384, 385] {
            let a: Vec<f64> = (0..n).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 53 % 97) as f64 - 48.0) / 5.0).collect();
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + y.abs());
            assert!(close(sum(&a), a.iter().sum()), "sum of {n}");
            assert!(close(dot(&a, &b), a.iter().zip(&b).map(|(x, y)| x * y).sum()), "dot of {n}");
            assert!(close(sum_map(&a, |x| x * x), a.iter().map(|x| x * x).sum()), "sum_map of {n}");
            assert_eq!(max(&a), a.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x)), "max of {n}");
        }
    }

    #[test]
    fn lanes_eight_apart_meet_first() {
        // In order, 1e16 + 1 rounds the 1 away (floats near 1e16 are 2
        // apart) and −1e16 then leaves 0. Here lane 0 (1e16) meets lane 8
        // (−1e16) first, and the 1 in lane 1 survives: the exact sum.
        let mut xs = [0.0f64; 16];
        (xs[0], xs[1], xs[8]) = (1e16, 1.0, -1e16);
        assert_eq!(xs.iter().fold(0.0, |s, &x| s + x), 0.0);
        assert_eq!(sum(&xs), 1.0);
    }
}
