//! Checking second derivatives (`torch.autograd.gradgradcheck`).
//!
//! `grad(.., create_graph = true)` builds the gradient out of each op's
//! `backward_graph`; differentiating it again gives second derivatives. To
//! check them, take the scalar
//!   F(x, r) = Σ r ⊙ f(x)
//! where r, the weight that turns f's output into a number, is an input too
//! (as PyTorch's gradgradcheck differentiates with respect to the
//! `grad_outputs`). Its gradient ∇F = (f'(x)ᵀ r, f(x)) is what a backward
//! pass computes, and the double backward gives the Hessian-vector product
//!   H v = ∇(∇F · v)
//! for a random direction v over all inputs. The slow, obviously-correct way
//! is to nudge the point along v and watch the (plain, fast) gradient move:
//!   H v ≈ (∇F(p + εv) − ∇F(p − εv)) / 2ε,
//! in f64 with gradcheck's ε and tolerances. Because r is an input, even an
//! op that is linear in x is checked: its backward must be recorded as a
//! function of r (∂²F/∂x∂r = f'(x)), so a backward that silently returns
//! plain numbers fails. A random v catches a wrong Hessian in any direction
//! but a measure-zero set, so one direction is enough.
//!
//! The check also compares the create_graph gradient itself with the one
//! `backward()` computes: `backward_graph` must agree with `backward`.

use tensor::{DType, Generator, Tensor};

use super::{GradcheckOptions, GradcheckReport};
use crate::grad_mode::no_grad;
use crate::higher_order::grad;
use crate::var::Var;

/// Both halves of the check; the inputs are f's, then r.
#[derive(Clone, Debug)]
pub struct SecondOrderReport {
    /// The create_graph gradient against `backward()`'s.
    pub first_order: GradcheckReport,
    /// The double-backward H v against finite differences of the gradient.
    pub hessian_vector: GradcheckReport,
    pub pass: bool,
}

impl std::fmt::Display for SecondOrderReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gradient {}; Hv {}", self.first_order, self.hessian_vector)
    }
}

/// Checks `f`'s second derivatives at `inputs` (converted to f64).
pub fn gradgradcheck(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor]) -> SecondOrderReport {
    gradgradcheck_with(f, inputs, GradcheckOptions::default())
}

pub fn gradgradcheck_with(f: impl Fn(&[Var]) -> Var, inputs: &[Tensor], opts: GradcheckOptions) -> SecondOrderReport {
    let mut point: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(DType::F64).contiguous_copy()).collect();
    let out_shape = no_grad(|| f(&constants(&point)).shape());
    let mut gen = Generator::seed(0x5eed);
    point.push(Tensor::uniform(out_shape, 0.5, 1.5, DType::F64, &mut gen));
    let direction: Vec<Tensor> =
        point.iter().map(|t| Tensor::uniform(t.shape().clone(), -1.0, 1.0, DType::F64, &mut gen)).collect();
    let n = inputs.len();
    let weighted_sum = |vars: &[Var]| f(&vars[..n]).mul(&vars[n]).sum_all();

    // ∇F by the fast path, at any point.
    let plain_gradient = |at: &[Tensor]| -> Vec<Vec<f64>> {
        let vars = parameters(at);
        weighted_sum(&vars).backward();
        vars.iter().map(|v| v.grad().map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; v.numel()])).collect()
    };

    // Analytic: ∇F recorded, then ∇(∇F · v) by a second backward.
    let vars = parameters(&point);
    let gradient = grad(&weighted_sum(&vars), &vars, true);
    let recorded: Vec<Vec<f64>> = gradient.iter().map(|g| g.data().to_f64_vec()).collect();
    let along_v = gradient
        .iter()
        .zip(&direction)
        .map(|(g, v)| g.mul(&Var::constant(v.clone())).sum_all())
        .reduce(|a, b| a.add(&b))
        .expect("at least one input");
    // A gradient with no graph left means H = 0 (or a backward that was not
    // recorded, which the comparison then catches).
    if along_v.requires_grad() {
        along_v.backward();
    }
    let hv: Vec<Vec<f64>> =
        vars.iter().map(|v| v.grad().map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; v.numel()])).collect();

    // Numeric: central differences of the plain gradient along v.
    let nudged = |scale: f64| -> Vec<Tensor> {
        point.iter().zip(&direction).map(|(p, v)| p.add(&v.mul_scalar(scale))).collect()
    };
    let (ahead, behind) = (plain_gradient(&nudged(opts.eps)), plain_gradient(&nudged(-opts.eps)));
    let numeric_hv: Vec<Vec<f64>> = ahead
        .iter()
        .zip(&behind)
        .map(|(a, b)| a.iter().zip(b).map(|(a, b)| (a - b) / (2.0 * opts.eps)).collect())
        .collect();

    let first_order = compare(&recorded, &plain_gradient(&point), opts);
    let hessian_vector = compare(&hv, &numeric_hv, opts);
    let pass = first_order.pass && hessian_vector.pass;
    SecondOrderReport { first_order, hessian_vector, pass }
}

/// Elementwise |analytic − reference| ≤ atol + rtol·|reference|, with the
/// worst element, in gradcheck's report.
fn compare(analytic: &[Vec<f64>], reference: &[Vec<f64>], opts: GradcheckOptions) -> GradcheckReport {
    let mut report = GradcheckReport { max_abs_err: 0.0, max_rel_err: 0.0, worst: None, pass: true };
    let mut worst_excess = f64::NEG_INFINITY;
    for (i, (a, r)) in analytic.iter().zip(reference).enumerate() {
        for (e, (&a, &r)) in a.iter().zip(r).enumerate() {
            let abs = (a - r).abs();
            report.max_abs_err = report.max_abs_err.max(abs);
            if r.abs() > opts.atol {
                report.max_rel_err = report.max_rel_err.max(abs / r.abs());
            }
            let excess = abs - (opts.atol + opts.rtol * r.abs());
            report.pass &= excess <= 0.0;
            if excess > worst_excess {
                worst_excess = excess;
                report.worst = Some((i, e, a, r));
            }
        }
    }
    report
}

fn constants(xs: &[Tensor]) -> Vec<Var> {
    xs.iter().map(|t| Var::constant(t.clone())).collect()
}

fn parameters(xs: &[Tensor]) -> Vec<Var> {
    xs.iter().map(|t| Var::parameter(t.clone())).collect()
}
