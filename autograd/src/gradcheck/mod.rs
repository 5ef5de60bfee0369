//! Checking gradients against finite differences (`torch.autograd.gradcheck`).
//!
//! For a function f of some inputs, backprop gives ∂L/∂x for every input
//! element at once. The slow, obviously-correct way is to nudge one element
//! by ±ε and watch the output move:
//!   ∂L/∂x_i ≈ (L(x + ε·e_i) − L(x − ε·e_i)) / 2ε.
//! Both run in f64 (ε = 1e-6) so rounding does not swamp the difference.
//! When f's output is not a scalar, L = Σ f(x) ⊙ r for a fixed random r,
//! which checks the vector–Jacobian product backward actually computes.
//!
//! An element passes when |analytic − numeric| ≤ atol + rtol·|numeric|,
//! with PyTorch's tolerances (atol 1e-5, rtol 1e-3).
//!
//! That costs two evaluations of f per input element, so it is run at
//! sizes of a few elements. [`gradcheck_fast`] (PyTorch's `fast_mode`)
//! checks one random direction instead: for a random input direction u and
//! output projection v, backprop gives vᵀJu = Σ_inputs ⟨∂(vᵀf)/∂x, u⟩ from
//! one backward pass, and finite differences give the same number from two
//! evaluations, (vᵀf(x + εu) − vᵀf(x − εu)) / 2ε, whatever the size. A wrong
//! gradient in any element shifts vᵀJu by that error times random weights,
//! so it is seen with probability one (and, for one direction, at a size
//! proportional to the error's share of the whole product).

use tensor::{DType, Generator, Tensor};

use crate::grad_mode::no_grad;
use crate::var::Var;

#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    pub eps: f64,
    pub atol: f64,
    pub rtol: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions { eps: 1e-6, atol: 1e-5, rtol: 1e-3 }
    }
}

/// The outcome, with the worst element found.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    /// (input index, flat element index, analytic, numeric) of the element
    /// furthest outside tolerance (or with the largest error if all pass).
    pub worst: Option<(usize, usize, f64, f64)>,
    pub pass: bool,
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} max_abs_err={:.3e} max_rel_err={:.3e}",
            if self.pass { "pass" } else { "FAIL" },
            self.max_abs_err,
            self.max_rel_err
        )?;
        if let Some((i, e, a, n)) = self.worst {
            write!(f, " worst: input {i} element {e}: analytic {a:.8e} numeric {n:.8e}")?;
        }
        Ok(())
    }
}

/// Checks `f`'s gradients with respect to every input (converted to f64).
pub fn gradcheck(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> GradcheckReport {
    gradcheck_with(f, inputs, GradcheckOptions::default())
}

pub fn gradcheck_with(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor], opts: GradcheckOptions) -> GradcheckReport {
    let inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F64).contiguous_copy()).collect();

    // The projection r that turns a tensor output into a scalar.
    let probe = no_grad(|| f(&constants(&inputs)).data());
    let r = Tensor::uniform(probe.shape().clone(), 0.5, 1.5, DType::F64, &mut Generator::seed(0x5eed));
    let scalar = |out: &Var| -> Var { out.mul(&Var::constant(r.clone())).sum_all() };

    // Analytic: one backward pass.
    let vars: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    scalar(&f(&vars)).backward();
    let analytic: Vec<Vec<f64>> =
        vars.iter().map(|v| v.grad().map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; v.numel()])).collect();

    // Numeric: two evaluations per element.
    let eval = |xs: &[Tensor]| no_grad(|| scalar(&f(&constants(xs))).item());
    let mut report = GradcheckReport { max_abs_err: 0.0, max_rel_err: 0.0, worst: None, pass: true };
    let mut worst_excess = f64::NEG_INFINITY;
    for (i, x) in inputs.iter().enumerate() {
        let base = x.to_vec::<f64>();
        for e in 0..base.len() {
            let nudged = |delta: f64| {
                let mut v = base.clone();
                v[e] += delta;
                let mut xs = inputs.clone();
                xs[i] = Tensor::from_vec(v, x.shape().clone()).expect("same length");
                eval(&xs)
            };
            let numeric = (nudged(opts.eps) - nudged(-opts.eps)) / (2.0 * opts.eps);
            let a = analytic[i][e];
            let abs = (a - numeric).abs();
            let rel = abs / numeric.abs().max(1e-12);
            report.max_abs_err = report.max_abs_err.max(abs);
            report.max_rel_err = report.max_rel_err.max(if numeric.abs() > opts.atol { rel } else { 0.0 });
            let excess = abs - (opts.atol + opts.rtol * numeric.abs());
            if excess > 0.0 {
                report.pass = false;
            }
            if excess > worst_excess {
                worst_excess = excess;
                report.worst = Some((i, e, a, numeric));
            }
        }
    }
    report
}

/// The fast-mode check: one random projection vᵀJu against its central
/// difference, in f64. The report holds that one comparison (`worst` is
/// `(0, 0, analytic, numeric)`); it passes when |analytic − numeric| ≤
/// atol + rtol·|numeric|. `seed` draws u (each input's direction, uniform in
/// ±1) and v (the output's projection, uniform in ±1).
pub fn gradcheck_fast(
    f: impl Fn(&[Var]) -> Var,
    inputs: &[Tensor],
    seed: u64,
    opts: GradcheckOptions,
) -> GradcheckReport {
    let inputs: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F64).contiguous_copy()).collect();
    let mut gen = Generator::seed(seed);
    let directions: Vec<Tensor> =
        inputs.iter().map(|x| Tensor::uniform(x.shape().clone(), -1.0, 1.0, DType::F64, &mut gen)).collect();

    // Analytic: backprop v through f, then project each input's gradient on u.
    let vars: Vec<Var> = inputs.iter().map(|t| Var::parameter(t.clone())).collect();
    let out = f(&vars);
    let v = Tensor::uniform(out.shape(), -1.0, 1.0, DType::F64, &mut gen);
    out.backward_with(v.clone());
    let analytic: f64 =
        vars.iter().zip(&directions).filter_map(|(x, u)| x.grad().map(|g| g.mul(u).sum_all().item_f64())).sum();

    // Numeric: f at x ± εu, each projected on v.
    let projected = |sign: f64| {
        let moved: Vec<Tensor> =
            inputs.iter().zip(&directions).map(|(x, u)| x.add(&u.mul_scalar(sign * opts.eps))).collect();
        no_grad(|| f(&constants(&moved)).data().mul(&v).sum_all().item_f64())
    };
    let numeric = (projected(1.0) - projected(-1.0)) / (2.0 * opts.eps);

    let abs = (analytic - numeric).abs();
    GradcheckReport {
        max_abs_err: abs,
        max_rel_err: abs / numeric.abs().max(1e-12),
        worst: Some((0, 0, analytic, numeric)),
        pass: abs <= opts.atol + opts.rtol * numeric.abs(),
    }
}

fn constants(xs: &[Tensor]) -> Vec<Var> {
    xs.iter().map(|t| Var::constant(t.clone())).collect()
}

pub mod random_graph;
pub mod second_order;
pub mod suite;
