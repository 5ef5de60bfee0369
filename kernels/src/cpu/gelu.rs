//! GELU with GPT-2's tanh approximation, forward and backward, fused.
//!
//! gelu(x) = ½·x·(1 + tanh u),  u = √(2/π)·(x + 0.044715·x³).
//!
//! [`gelu_reference`] and [`gelu_derivative_reference`] are that formula
//! and its derivative as written, in f64. The fused kernels after them
//! change the form, not the value: since ½·(1 + tanh u) = σ(2u) (the logistic sigmoid), the same value is
//! x·σ(2u) = x / (1 + e^(−2u)): one exponential and one division, both of
//! which vectorise (see `math::exp_f32`), where `tanh` is a library call per
//! element. Its derivative, with s = σ(2u):
//!   gelu'(x) = s + 2·x·s·(1 − s)·du/dx,   du/dx = √(2/π)·(1 + 3·0.044715·x²).
//! The backward multiplies by the incoming gradient in the same pass, so it
//! reads x and dy once and writes dx once.

use rayon::prelude::*;

use super::math::FastExp;

/// √(2/π), GELU's tanh-approximation constant.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const CUBIC: f64 = 0.044_715;
/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// gelu(x) = ½·x·(1 + tanh u) as written, in f64: the reference for
/// [`gelu_forward`].
pub fn gelu_reference(x: f64) -> f64 {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    0.5 * x * (1.0 + u.tanh())
}

/// gelu'(x) = ½·(1 + tanh u) + ½·x·(1 − tanh² u)·du/dx, in f64: the
/// reference for [`gelu_backward`] (which multiplies it by dy).
pub fn gelu_derivative_reference(x: f64) -> f64 {
    let u = SQRT_2_OVER_PI * (x + CUBIC * x * x * x);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * CUBIC * x * x);
    0.5 * (1.0 + u.tanh()) + 0.5 * x * (1.0 - u.tanh() * u.tanh()) * du
}

/// σ(2u) for one x, and du/dx.
#[inline(always)]
fn gate<T: FastExp>(x: T) -> (T, T) {
    let c = T::from(SQRT_2_OVER_PI).unwrap();
    let a = T::from(CUBIC).unwrap();
    let x2 = x * x;
    let u = c * (x + a * x2 * x);
    let s = T::one() / (T::one() + (-(u + u)).fast_exp());
    let du = c * (T::one() + T::from(3.0).unwrap() * a * x2);
    (s, du)
}

/// y = gelu(x).
pub fn gelu_forward<T: FastExp + Send + Sync>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "gelu: input {} vs output {}", x.len(), y.len());
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x * gate(x).0;
        }
    });
}

/// dx = dy · gelu'(x).
pub fn gelu_backward<T: FastExp + Send + Sync>(x: &[T], dy: &[T], dx: &mut [T]) {
    assert!(x.len() == dy.len() && x.len() == dx.len(), "gelu backward: lengths {} {} {}", x.len(), dy.len(), dx.len());
    dx.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (x, dy))| {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            let (s, du) = gate(x);
            let two = T::one() + T::one();
            *dx = dy * (s + two * x * s * (T::one() - s) * du);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_tanh_form_in_f32_and_f64() {
        let xs: Vec<f64> = (-400..=400).map(|i| i as f64 * 0.025).collect();
        let mut y64 = vec![0.0; xs.len()];
        gelu_forward(&xs, &mut y64);
        let x32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        let mut y32 = vec![0.0f32; xs.len()];
        gelu_forward(&x32, &mut y32);
        for ((&x, &a), &b) in xs.iter().zip(&y64).zip(&y32) {
            let r = gelu_reference(x);
            assert!((a - r).abs() <= 1e-14 * (1.0 + r.abs()), "f64 at {x}: {a} vs {r}");
            // f32 rounds u itself (relative 6e-8); e^(−2u) magnifies that by
            // 2|u|, so a few ulp in the far tail. (The tanh form is worse
            // there: 1 + tanh u cancels.)
            let r32 = gelu_reference(x as f32 as f64);
            assert!((b as f64 - r32).abs() <= 2e-6 * r32.abs() + 1e-12, "f32 at {x}: {b} vs {r32}");
        }
    }

    #[test]
    fn backward_is_the_derivative() {
        let xs: Vec<f64> = (-80..=80).map(|i| i as f64 * 0.1).collect();
        let ones = vec![2.0; xs.len()];
        let mut dx = vec![0.0; xs.len()];
        gelu_backward(&xs, &ones, &mut dx);
        for (&x, &d) in xs.iter().zip(&dx) {
            let h = 1e-6;
            let numeric = 2.0 * (gelu_reference(x + h) - gelu_reference(x - h)) / (2.0 * h);
            assert!((d - numeric).abs() < 1e-8, "at {x}: {d} vs {numeric}");
            let exact = 2.0 * gelu_derivative_reference(x);
            assert!((d - exact).abs() < 1e-13, "at {x}: {d} vs {exact}");
        }
    }
}
