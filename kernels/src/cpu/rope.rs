//! Rotary position embedding (RoPE) in the "rotate half" layout of
//! transformers' Llama, forward and backward.
//!
//! A head vector x of `d` values (d even) is cut into halves, and element
//! i of the first half is paired with element i + d/2 of the second. Each
//! pair is a point in the plane, turned by the angle θᵢ = pos · inv_freqᵢ:
//!   y[i]       = x[i] · cos θᵢ − x[i + d/2] · sin θᵢ
//!   y[i + d/2] = x[i + d/2] · cos θᵢ + x[i] · sin θᵢ
//! (transformers writes it `x · cos + rotate_half(x) · sin` with
//! `rotate_half(x) = cat(−x₂, x₁)` and cos, sin repeated twice along d;
//! pairs are *not* adjacent elements, as in the interleaved GPT-J layout).
//! A rotation is orthogonal, so the backward is the rotation by −θ: the
//! same kernel with sin negated (`inverse`).
//!
//! Partial rotation (Phi-3's `partial_rotary_factor`, GPT-NeoX's
//! `rotary_pct`): only the first `rotary` ≤ d elements of each head turn,
//! paired i with i + rotary/2 as above, and the last d − rotary pass
//! through unchanged (transformers cuts x into `x[..., :rotary]` and
//! `x[..., rotary:]` and concatenates after). With `rotary` = d it is the
//! whole-head rotation.
//!
//! Layout: x is a dense `[outer, t, heads, d]` buffer (outer = batch),
//! and the tables `cos`, `sin` are `[t, rotary/2]`, row p holding the angles of
//! the position that row p of x has (the caller builds them for positions
//! offset..offset + t, see `tensor::rope`). Every head of a position uses
//! the same row. The tables are f32 whatever the input's type.
//!
//! [`rope_reference`] is transformers' expression as written, in f64; the
//! kernel [`rope`] computes each pair directly, positions shared out to
//! rayon tasks of about 16k elements.

use num_traits::Float;
use rayon::prelude::*;

use super::rows_per_task;

/// The sizes of a RoPE call: x `[outer, t, heads, d]`, of which the first
/// `rotary` (even, ≤ d) elements of each head turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeShape {
    pub outer: usize,
    pub t: usize,
    pub heads: usize,
    pub d: usize,
    pub rotary: usize,
}

impl RopeShape {
    /// A shape whose whole head turns (`rotary` = d).
    pub fn full(outer: usize, t: usize, heads: usize, d: usize) -> RopeShape {
        RopeShape { outer, t, heads, d, rotary: d }
    }
}

/// `cat(x_rot · cos + rotate_half(x_rot) · sin, x_pass)` per head vector,
/// in f64, with x_rot = x[..rotary], x_pass = x[rotary..] and cos and sin
/// `[t, rotary/2]` repeated to `[t, rotary]` as transformers builds them:
/// the reference for [`rope`] (`inverse`: the rotation by −θ).
pub fn rope_reference(x: &[f64], cos: &[f64], sin: &[f64], s: RopeShape, inverse: bool) -> Vec<f64> {
    let (r, sign) = (s.rotary, if inverse { -1.0 } else { 1.0 });
    let half = r / 2;
    let mut y = x.to_vec(); // the pass-through part stays as it is
    for (v, (x, y)) in x.chunks(s.d).zip(y.chunks_mut(s.d)).enumerate() {
        let p = v / s.heads % s.t;
        let rotate_half: Vec<f64> = (0..r).map(|i| if i < half { -x[i + half] } else { x[i - half] }).collect();
        for i in 0..r {
            let (c, sn) = (cos[p * half + i % half], sign * sin[p * half + i % half]);
            y[i] = x[i] * c + rotate_half[i] * sn;
        }
    }
    y
}

/// y = x rotated by each position's angles (by their negatives when
/// `inverse`, which is the backward). x and y dense `[outer, t, heads, d]`.
pub fn rope<T: Float + Send + Sync>(x: &[T], cos: &[f32], sin: &[f32], s: RopeShape, inverse: bool, y: &mut [T]) {
    assert_eq!(x.len(), s.outer * s.t * s.heads * s.d, "rope: buffer of {} for {s:?}", x.len());
    assert_eq!(y.len(), x.len(), "rope: input {} vs output {}", x.len(), y.len());
    let half = s.rotary / 2;
    assert!(
        s.rotary % 2 == 0 && s.rotary <= s.d && cos.len() >= s.t * half && sin.len() >= s.t * half,
        "rope: rotary size or tables do not fit {s:?}"
    );
    let position = s.heads * s.d;
    if position == 0 {
        return;
    }
    let task = rows_per_task(position) * position;
    y.par_chunks_mut(task).zip(x.par_chunks(task)).enumerate().for_each(|(k, (y, x))| {
        let first = k * task / position;
        for (q, (y, x)) in y.chunks_mut(position).zip(x.chunks(position)).enumerate() {
            let p = (first + q) % s.t;
            let (cos, sin) = (&cos[p * half..(p + 1) * half], &sin[p * half..(p + 1) * half]);
            for (y, x) in y.chunks_mut(s.d).zip(x.chunks(s.d)) {
                let ((x_rot, x_pass), (y_rot, y_pass)) = (x.split_at(s.rotary), y.split_at_mut(s.rotary));
                y_pass.copy_from_slice(x_pass);
                let (x1, x2) = x_rot.split_at(half);
                let (y1, y2) = y_rot.split_at_mut(half);
                for i in 0..half {
                    let c = T::from(cos[i]).unwrap();
                    let sn = if inverse { -T::from(sin[i]).unwrap() } else { T::from(sin[i]).unwrap() };
                    y1[i] = x1[i] * c - x2[i] * sn;
                    y2[i] = x2[i] * c + x1[i] * sn;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(t: usize, half: usize) -> (Vec<f32>, Vec<f32>) {
        let angle = |p: usize, i: usize| p as f64 * 10000f64.powf(-(i as f64) / half as f64);
        let cos = (0..t * half).map(|k| angle(k / half, k % half).cos() as f32).collect();
        let sin = (0..t * half).map(|k| angle(k / half, k % half).sin() as f32).collect();
        (cos, sin)
    }

    /// Enough positions for several rayon tasks, and the reference's form.
    #[test]
    fn kernel_matches_the_rotate_half_reference() {
        for s in [
            RopeShape::full(2, 5, 3, 8),
            RopeShape::full(3, 97, 4, 64),
            RopeShape::full(1, 40, 2, 128),
            // Partial rotation: a quarter and a half of the head turn.
            RopeShape { outer: 2, t: 5, heads: 3, d: 8, rotary: 2 },
            RopeShape { outer: 3, t: 33, heads: 2, d: 64, rotary: 32 },
        ] {
            let (cos, sin) = tables(s.t, s.rotary / 2);
            let n = s.outer * s.t * s.heads * s.d;
            let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.731).sin()).collect();
            let (c64, s64): (Vec<f64>, Vec<f64>) =
                (cos.iter().map(|&v| v as f64).collect(), sin.iter().map(|&v| v as f64).collect());
            for inverse in [false, true] {
                let mut y = vec![0.0; n];
                rope(&x, &cos, &sin, s, inverse, &mut y);
                let want = rope_reference(&x, &c64, &s64, s, inverse);
                let worst = y.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-14, "{s:?} inverse={inverse}: off by {worst:e}");
            }
        }
    }

    #[test]
    fn the_inverse_undoes_the_rotation_and_lengths_are_kept() {
        let s = RopeShape::full(2, 7, 2, 6);
        let (cos, sin) = tables(s.t, 3);
        let x: Vec<f64> = (0..2 * 7 * 2 * 6).map(|i| (i as f64 * 1.3).cos()).collect();
        let (mut y, mut back) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        rope(&x, &cos, &sin, s, false, &mut y);
        rope(&y, &cos, &sin, s, true, &mut back);
        // cos² + sin² of f32 tables is 1 within f32 rounding.
        assert!(x.iter().zip(&back).all(|(a, b)| (a - b).abs() < 1e-6));
        // Position 0 has angle 0: its rows come out unchanged.
        assert!(x[..12].iter().zip(&y[..12]).all(|(a, b)| (a - b).abs() < 1e-15));
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>();
        assert!((norm(&x) - norm(&y)).abs() < 1e-5);
    }

    /// With 4 of 6 elements turning, the last 2 of every head come out as
    /// they went in, and the first 4 as a 4-wide rotation gives them.
    #[test]
    fn a_partial_rotation_passes_the_rest_through() {
        let s = RopeShape { outer: 1, t: 3, heads: 2, d: 6, rotary: 4 };
        let (cos, sin) = tables(s.t, 2);
        let x: Vec<f64> = (0..3 * 2 * 6).map(|i| (i as f64 * 0.9).sin()).collect();
        let mut y = vec![0.0; x.len()];
        rope(&x, &cos, &sin, s, false, &mut y);
        let rot: Vec<f64> = x.chunks(6).flat_map(|h| h[..4].to_vec()).collect();
        let mut want = vec![0.0; rot.len()];
        rope(&rot, &cos, &sin, RopeShape::full(1, 3, 2, 4), false, &mut want);
        for (h, (y, x)) in y.chunks(6).zip(x.chunks(6)).enumerate() {
            assert_eq!(&y[4..], &x[4..], "head {h} passes through");
            assert_eq!(&y[..4], &want[4 * h..4 * h + 4], "head {h} turns");
        }
    }
}
