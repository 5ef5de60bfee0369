//! The kernel tier of gradcheck: the f32 kernels at sizes that cross their
//! parallel and blocking thresholds, against f64 references, pass; and a
//! wrong forward, a wrong backward or a slightly inexact kernel fails.

use scratchgpt::autograd::{BackwardOp, Var};
use scratchgpt::cli::kernel_tier::{cases, KernelCase, KernelSizes, U};
use scratchgpt::tensor::{Generator, Tensor};

const SEED: u64 = 11;

fn quick_cases() -> Vec<KernelCase> {
    cases(KernelSizes::quick(), &mut Generator::seed(SEED))
}

fn case(cases: &mut Vec<KernelCase>, op: &str, variant: &str) -> KernelCase {
    let i = cases.iter().position(|c| c.op == op && c.variant.starts_with(variant)).expect("case exists");
    cases.swap_remove(i)
}

#[test]
fn every_kernel_case_passes() {
    let all = quick_cases();
    let mut failures = Vec::new();
    for c in &all {
        let r = c.check(SEED);
        if !r.pass {
            failures.push(format!(
                "{} {} {}: err/bound {:.3} max abs {:.3e} fd {}",
                c.op, c.variant, c.shapes, r.worst_ratio, r.max_abs_err, r.fd
            ));
        }
    }
    assert!(failures.is_empty(), "kernel tier failures:\n{}", failures.join("\n"));
    for family in [
        "exp",
        "gelu",
        "add",
        "div",
        "mul_scalar",
        "sum",
        "mean",
        "max",
        "var",
        "softmax",
        "log_softmax",
        "layer_norm",
        "matmul",
        "linear",
        "embedding",
        "index_select",
        "gather",
        "attention",
        "cross_entropy",
        "dropout",
        "rms_norm",
        "rope",
        "silu",
        "swiglu",
    ] {
        assert!(all.iter().any(|c| c.op == family), "no kernel case for {family}");
    }
}

#[test]
fn a_gemm_that_drops_its_last_column_is_caught() {
    let mut all = quick_cases();
    let mut c = case(&mut all, "matmul", "plain");
    assert!(c.check(SEED).pass);
    // The product with its last column zeroed, as a ragged-edge bug would.
    let n = c.inputs[1].dims()[1];
    let mut keep = vec![1.0f32; n];
    keep[n - 1] = 0.0;
    let keep = Tensor::from_vec(keep, [n]).unwrap();
    c.f = Box::new(move |v| v[0].matmul(&v[1]).mul(&Var::constant(keep.to_dtype(v[0].dtype()))));
    assert!(!c.check(SEED).pass);
}

/// Softmax whose backward is off by one part in 10⁴: a forward check alone
/// would pass it; the vector–Jacobian product does not.
#[test]
fn a_softmax_backward_off_by_a_little_is_caught() {
    struct Scaled {
        y: Tensor,
    }
    impl BackwardOp for Scaled {
        fn name(&self) -> &'static str {
            "softmax"
        }
        fn backward(&self, g: &Tensor, _: &[bool]) -> Vec<Option<Tensor>> {
            let dot = g.mul(&self.y).sum(-1, true);
            vec![Some(self.y.mul(&g.sub(&dot)).mul_scalar(1.0 + 1e-4))]
        }
    }
    let mut all = quick_cases();
    let mut c = case(&mut all, "softmax", "dim=-1");
    c.f = Box::new(|v| {
        let y = v[0].data().softmax(-1);
        Var::from_op(y.clone(), &[&v[0]], || Scaled { y })
    });
    let r = c.check(SEED);
    assert!(!r.pass, "err/bound {}", r.worst_ratio);
}

/// An exp good to 64 ulps rather than a few is not good enough.
#[test]
fn an_inexact_exp_is_caught() {
    let mut all = quick_cases();
    let mut c = case(&mut all, "exp", "");
    c.f = Box::new(|v| v[0].exp().mul_scalar(1.0 + 64.0 * U));
    assert!(!c.check(SEED).pass);
}
