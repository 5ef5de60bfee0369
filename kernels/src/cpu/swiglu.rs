//! SiLU and the fused SwiGLU of the Llama MLP, forward and backward.
//!
//! silu(x) = x · σ(x) = x / (1 + e^(−x))   (also called swish)
//! silu'(x) = σ(x) · (1 + x · (1 − σ(x)))
//!
//! The Llama MLP is down(swiglu(gate(x), up(x))) with
//!   swiglu(g, u) = silu(g) · u,
//! and its backward, given dy:
//!   dg = dy · u · silu'(g),   du = dy · silu(g).
//! Fused, the forward reads g and u once and writes y once, instead of a
//! silu pass, a stored [B, T, hidden] intermediate and a multiply; the
//! backward reads g, u, dy once and writes both gradients in the same pass.
//!
//! [`silu_reference`], [`silu_derivative_reference`] and
//! [`swiglu_reference`] are the formulas as written, in f64. The kernels
//! compute σ with the vectorisable `fast_exp` (`math.rs`), in chunks of
//! 16k elements per rayon task.

use rayon::prelude::*;

use super::math::FastExp;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// silu(x) = x / (1 + e^(−x)), in f64: the reference for [`silu_forward`].
pub fn silu_reference(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// silu'(x) = σ(x)·(1 + x·(1 − σ(x))), in f64: the reference for
/// [`silu_backward`] (which multiplies it by dy).
pub fn silu_derivative_reference(x: f64) -> f64 {
    let s = 1.0 / (1.0 + (-x).exp());
    s * (1.0 + x * (1.0 - s))
}

/// swiglu(g, u) = silu(g)·u and its gradients (dg, du) for dy, in f64: the
/// reference for [`swiglu_forward`] and [`swiglu_backward`].
pub fn swiglu_reference(g: f64, u: f64, dy: f64) -> (f64, f64, f64) {
    (silu_reference(g) * u, dy * u * silu_derivative_reference(g), dy * silu_reference(g))
}

/// σ(x), through the fast exponential.
#[inline(always)]
fn sigmoid<T: FastExp>(x: T) -> T {
    T::one() / (T::one() + (-x).fast_exp())
}

/// y = silu(x).
pub fn silu_forward<T: FastExp + Send + Sync>(x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "silu: input {} vs output {}", x.len(), y.len());
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(y, x)| {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = x * sigmoid(x));
    });
}

/// dx = dy · silu'(x).
pub fn silu_backward<T: FastExp + Send + Sync>(x: &[T], dy: &[T], dx: &mut [T]) {
    assert!(x.len() == dy.len() && x.len() == dx.len(), "silu backward: lengths {} {} {}", x.len(), dy.len(), dx.len());
    dx.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK))).for_each(|(dx, (x, dy))| {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            let s = sigmoid(x);
            *dx = dy * s * (T::one() + x * (T::one() - s));
        }
    });
}

/// y = silu(gate) · up.
pub fn swiglu_forward<T: FastExp + Send + Sync>(gate: &[T], up: &[T], y: &mut [T]) {
    assert!(gate.len() == up.len() && gate.len() == y.len(), "swiglu: lengths {} {} {}", gate.len(), up.len(), y.len());
    y.par_chunks_mut(CHUNK).zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK))).for_each(|(y, (g, u))| {
        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
            *y = g * sigmoid(g) * u;
        }
    });
}

/// dgate = dy · up · silu'(gate) and dup = dy · silu(gate), in one pass.
pub fn swiglu_backward<T: FastExp + Send + Sync>(gate: &[T], up: &[T], dy: &[T], dgate: &mut [T], dup: &mut [T]) {
    let n = gate.len();
    assert!(
        up.len() == n && dy.len() == n && dgate.len() == n && dup.len() == n,
        "swiglu backward: lengths {n} {} {} {} {}",
        up.len(),
        dy.len(),
        dgate.len(),
        dup.len()
    );
    dgate.par_chunks_mut(CHUNK).zip(dup.par_chunks_mut(CHUNK)).enumerate().for_each(|(k, (dg, du))| {
        let range = k * CHUNK..(k * CHUNK + dg.len());
        let (g, u, dy) = (&gate[range.clone()], &up[range.clone()], &dy[range]);
        for i in 0..dg.len() {
            let s = sigmoid(g[i]);
            let silu = g[i] * s;
            du[i] = dy[i] * silu;
            dg[i] = dy[i] * u[i] * s * (T::one() + g[i] * (T::one() - s));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_the_references_in_f32_and_f64() {
        let xs: Vec<f64> = (-400..=400).map(|i| i as f64 * 0.03).collect();
        let ups: Vec<f64> = xs.iter().map(|x| (x * 1.7).cos()).collect();
        let dys: Vec<f64> = xs.iter().map(|x| (x * 0.9).sin()).collect();
        let n = xs.len();
        let (mut y, mut dx, mut dg, mut du) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        silu_forward(&xs, &mut y);
        silu_backward(&xs, &dys, &mut dx);
        for i in 0..n {
            assert!((y[i] - silu_reference(xs[i])).abs() < 1e-14 * (1.0 + y[i].abs()));
            assert!((dx[i] - dys[i] * silu_derivative_reference(xs[i])).abs() < 1e-14);
        }
        swiglu_forward(&xs, &ups, &mut y);
        swiglu_backward(&xs, &ups, &dys, &mut dg, &mut du);
        for i in 0..n {
            let (wy, wg, wu) = swiglu_reference(xs[i], ups[i], dys[i]);
            assert!((y[i] - wy).abs() < 1e-14 && (dg[i] - wg).abs() < 1e-14 && (du[i] - wu).abs() < 1e-14);
        }
        // f32: σ through fast_exp (2 ulp) and a few roundings.
        let x32: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        let mut y32 = vec![0.0f32; n];
        silu_forward(&x32, &mut y32);
        for (&x, &y) in x32.iter().zip(&y32) {
            let want = silu_reference(x as f64);
            assert!((y as f64 - want).abs() <= 1e-6 * (want.abs() + (x as f64).abs() * 0.25), "at {x}: {y} vs {want}");
        }
    }

    #[test]
    fn derivative_is_the_slope_and_saturates_without_nan() {
        for x in [-30.0, -3.0, -0.5, 0.0, 0.7, 4.0] {
            let h = 1e-6;
            let numeric = (silu_reference(x + h) - silu_reference(x - h)) / (2.0 * h);
            assert!((silu_derivative_reference(x) - numeric).abs() < 1e-8, "at {x}");
        }
        let x = [-200.0f32, 200.0];
        let (mut y, mut dx) = ([0.0f32; 2], [0.0f32; 2]);
        silu_forward(&x, &mut y);
        silu_backward(&x, &[1.0, 1.0], &mut dx);
        // fast_exp clamps its argument at ±87.3, so the far negative tail is
        // tiny rather than exactly 0; never NaN.
        assert!(y[0].abs() < 1e-30 && dx[0].abs() < 1e-30, "{y:?} {dx:?}");
        assert_eq!((y[1], dx[1]), (200.0, 1.0));
    }
}
