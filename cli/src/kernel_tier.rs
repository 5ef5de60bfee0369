//! The kernel tier of `scratchgpt gradcheck`: the f32 code that training
//! runs, at realistic sizes, against independent references in f64.
//!
//! The exact tier (`autograd::gradcheck::suite`) proves each backward is the
//! derivative of its forward, in f64, at sizes of five or less. It never
//! reaches what a training step executes: f32, the packed AVX-512 GEMM with
//! ragged 12×32 tiles and K cut in blocks of 384, the vectorised `fast_exp`,
//! 16-lane row reductions, rows shared out to rayon tasks above 32,768
//! elements (or 2^18 multiply-adds for a GEMM), attention in query blocks of
//! 64. This tier runs every op family there, and for each case checks
//! - the forward, y = f(x) in f32, against the reference in f64;
//! - the backward through a random vector–Jacobian product: with a random
//!   cotangent v (uniform in ±1), the f32 input gradients vᵀ∂f/∂x against
//!   the reference's;
//! - the f64 backward against finite differences in one random direction
//!   ([`autograd::gradcheck_fast`]), which reaches these sizes because it
//!   costs two evaluations of f instead of two per element.
//!
//! Inputs are drawn in f32 and read exactly in f64, so a difference is the
//! f32 code's rounding, or a bug. Each element must satisfy
//!   |f32 − reference| ≤ c · u · scaleᵢ,   u = 2⁻²⁴ (f32's unit roundoff),
//! where scaleᵢ is what that element's rounding error is proportional to
//! (Σ|aₖbₖ| for a dot product, |y| for a correctly rounded op, ...) and c
//! the number of roundings it can accumulate. Each case states its formula
//! ([`Bound::formula`]); the report gives the largest error over its bound.
//!
//! The references are not the f32 kernels run in f64: most fused CPU
//! kernels are generic over the float type, so the f64 op would share the
//! code under test. They are the readable `*_reference` functions of
//! `kernels::cpu` (GEMM, softmax, log-softmax, layer norm, attention,
//! cross-entropy, GELU: explicit loops in f64), the standard library's f64
//! `exp`, `ln`, `tanh`, and plain loops written here for broadcasting,
//! reductions and indexing. That is why the tier lives in the command-line
//! crate, above both `autograd` (the ops under test) and `kernels` (the
//! references): `autograd` stays free of any dependency on `kernels`.
//!
//! This file holds the harness (a case, its check, its bound); each op
//! family's cases and references are a module of their own:
//! `elementwise`, `reductions`, `rows`, `matmul`, `index`,
//! `attention`, `grouped_attention`, `loss_and_dropout` and
//! `llama`.

mod attention;
mod elementwise;
mod grouped_attention;
mod index;
mod llama;
mod loss_and_dropout;
mod matmul;
mod reductions;
mod rows;

use autograd::{gradcheck_fast, GradcheckOptions, GradcheckReport, Var};
use tensor::{DType, Generator, Tensor};

/// f32's unit roundoff, 2⁻²⁴: one correctly rounded f32 operation is off
/// by at most u times its result.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

type OpFn = Box<dyn Fn(&[Var]) -> Var>;
type ReferenceFn = Box<dyn Fn(&ReferenceInput) -> Expected>;

/// What a reference is given: the inputs and the cotangent v in f64, and
/// the f32 forward's output (read only by dropout, to learn which elements
/// its random mask kept).
pub struct ReferenceInput<'a> {
    pub xs: &'a [Vec<f64>],
    pub v: &'a [f64],
    pub out32: &'a [f64],
}

/// One tensor's reference values and, per element, the scale its rounding
/// error is proportional to.
pub struct Expected {
    pub out: Checked,
    pub grads: Vec<Checked>,
}

#[derive(Clone, Default)]
pub struct Checked {
    pub value: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Checked {
    fn new(value: Vec<f64>, scale: Vec<f64>) -> Self {
        debug_assert_eq!(value.len(), scale.len());
        Checked { value, scale }
    }
    /// For an op whose result is one correctly rounded operation (or a
    /// copy): the scale is |value| itself.
    fn relative(value: Vec<f64>) -> Self {
        let scale = value.iter().map(|x| x.abs()).collect();
        Checked { value, scale }
    }
    /// One scale for the whole tensor: its largest magnitude (a normwise
    /// bound, for compound ops whose elementwise error has no simple form).
    fn normwise(value: Vec<f64>, factor: f64) -> Self {
        let m = value.iter().fold(0.0f64, |m, x| m.max(x.abs())) * factor;
        let scale = vec![m; value.len()];
        Checked { value, scale }
    }
}

/// The allowed error: `c · u · scaleᵢ`, with the formula it came from.
#[derive(Clone, Debug)]
pub struct Bound {
    pub c: f64,
    pub formula: String,
}

fn bound(c: f64, formula: impl Into<String>) -> Bound {
    Bound { c, formula: formula.into() }
}

/// One f32 op at realistic sizes with its f64 reference.
pub struct KernelCase {
    /// The autograd op's exact name (`matmul`, `softmax`, ...).
    pub op: String,
    /// What this case exercises (`dim=0, keepdim`, `transposed operands`...).
    pub variant: String,
    /// The input shapes, e.g. `[193,771]x[771]`.
    pub shapes: String,
    /// The inputs, in f32.
    pub inputs: Vec<Tensor>,
    pub f: OpFn,
    pub reference: ReferenceFn,
    pub bound: Bound,
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct KernelReport {
    /// Largest |f32 − reference| over the output and every input gradient.
    pub max_abs_err: f64,
    /// Largest |f32 − reference| over the largest |reference| of the same
    /// tensor (normwise, so that values near zero do not blow it up).
    pub max_rel_err: f64,
    /// Largest error over its bound c·u·scaleᵢ: the case passes at ≤ 1.
    pub worst_ratio: f64,
    /// The f64 backward against finite differences in one direction.
    pub fd: GradcheckReport,
    pub pass: bool,
}

impl KernelCase {
    /// Runs the f32 op forward and backward with a cotangent drawn from
    /// `seed`, the reference, and the fast finite-difference check.
    pub fn check(&self, seed: u64) -> KernelReport {
        let mut gen = Generator::seed(seed);
        let vars: Vec<Var> = self.inputs.iter().map(|t| Var::parameter(t.clone())).collect();
        let out = (self.f)(&vars);
        let v = Tensor::uniform(out.shape(), -1.0, 1.0, DType::F32, &mut gen);
        out.backward_with(v.clone());
        let out32 = out.data().to_f64_vec();
        let grads32: Vec<Vec<f64>> =
            vars.iter().map(|x| x.grad().map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; x.numel()])).collect();

        let xs: Vec<Vec<f64>> = self.inputs.iter().map(|t| t.to_f64_vec()).collect();
        let v = v.to_f64_vec();
        let expected = (self.reference)(&ReferenceInput { xs: &xs, v: &v, out32: &out32 });
        assert_eq!(expected.grads.len(), grads32.len(), "{}: one reference gradient per input", self.op);

        let mut report = KernelReport {
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            worst_ratio: 0.0,
            fd: gradcheck_fast(&self.f, &self.inputs, seed ^ 0xfd, GradcheckOptions::default()),
            pass: true,
        };
        let pairs = std::iter::once((&out32, &expected.out)).chain(grads32.iter().zip(&expected.grads));
        for (got, want) in pairs {
            assert_eq!(got.len(), want.value.len(), "{}: reference has the wrong length", self.op);
            let largest = want.value.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for ((&g, &w), &s) in got.iter().zip(&want.value).zip(&want.scale) {
                let err = (g - w).abs();
                let allowed = self.bound.c * U * s;
                let ratio = if err == 0.0 { 0.0 } else { err / allowed };
                // NaN anywhere fails: `!(x <= 1)` is true for NaN.
                if !(ratio <= 1.0) {
                    report.pass = false;
                }
                report.max_abs_err = report.max_abs_err.max(err);
                report.max_rel_err = report.max_rel_err.max(if largest > 0.0 { err / largest } else { err });
                report.worst_ratio = if ratio.is_nan() || report.worst_ratio.is_nan() {
                    f64::NAN
                } else {
                    report.worst_ratio.max(ratio)
                };
            }
        }
        report.pass &= report.fd.pass;
        report
    }
}

/// The sizes the cases are built from. [`KernelSizes::full`] is what the
/// command line runs; [`KernelSizes::quick`] keeps every threshold crossed
/// (parallel elementwise work, parallel and K-blocked GEMM, ragged tiles
/// and blocks) at a fraction of the reference's cost, for tests.
#[derive(Clone, Copy, Debug)]
pub struct KernelSizes {
    /// Rows of the row-wise and elementwise cases, and GEMM's m (not a
    /// multiple of the GEMM's 12-row tile).
    pub rows: usize,
    /// Row width and GEMM's n: not a multiple of 16 lanes or 32 columns.
    pub width: usize,
    /// GEMM's k: more than one 384-deep block, ragged; also the classes of
    /// cross-entropy.
    pub inner: usize,
    /// Sequence lengths of attention: a multiple of the 64-query block and
    /// a ragged one.
    pub t: usize,
    pub ragged_t: usize,
    pub head_dim: usize,
}

impl KernelSizes {
    pub fn full() -> Self {
        KernelSizes { rows: 193, width: 771, inner: 1003, t: 256, ragged_t: 193, head_dim: 64 }
    }
    pub fn quick() -> Self {
        KernelSizes { rows: 67, width: 771, inner: 389, t: 128, ragged_t: 97, head_dim: 64 }
    }
}

fn shape_str(dims: &[usize]) -> String {
    format!("{dims:?}").replace(' ', "")
}

struct Builder<'g> {
    cases: Vec<KernelCase>,
    gen: &'g mut Generator,
}

impl Builder<'_> {
    fn uniform(&mut self, dims: &[usize], low: f64, high: f64) -> Tensor {
        Tensor::uniform(dims.to_vec(), low, high, DType::F32, self.gen)
    }
    /// Values in ±[0.1, 2]: away from the kinks of relu, abs, max at 0.
    fn away_from_zero(&mut self, dims: &[usize]) -> Tensor {
        let mag = self.uniform(dims, 0.1, 2.0);
        let sign = self.uniform(dims, -1.0, 1.0).compare_scalar(0.0, tensor::CmpOp::Ge).to_dtype(DType::F32);
        mag.mul(&sign.mul_scalar(2.0).add_scalar(-1.0))
    }
    /// Values on a grid of 1/64 (`offset` 0) or halfway between its points
    /// (`offset` 0.5): an operand of each kind never comes within 1/128 of
    /// the other, so the finite-difference step (1e-6) never crosses the
    /// kink of maximum or minimum.
    fn on_grid(&mut self, dims: &[usize], offset: f32) -> Tensor {
        let x = self.away_from_zero(dims).to_vec::<f32>();
        let snapped = x.iter().map(|&v| ((v * 64.0).floor() + offset) / 64.0).collect();
        Tensor::from_vec(snapped, dims.to_vec()).unwrap()
    }
    /// Every element distinct, at least 4/numel apart (a shuffled ramp over
    /// [−2, 2)): no two candidates for a maximum come within the
    /// finite-difference step of each other.
    fn distinct(&mut self, dims: &[usize]) -> Tensor {
        let keys = self.uniform(&[dims.iter().product()], 0.0, 1.0).to_vec::<f32>();
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&i, &j| keys[i].total_cmp(&keys[j]));
        let step = 4.0 / keys.len() as f32;
        let mut values = vec![0.0f32; keys.len()];
        for (rank, &i) in order.iter().enumerate() {
            values[i] = -2.0 + step * rank as f32;
        }
        Tensor::from_vec(values, dims.to_vec()).unwrap()
    }
    fn add(
        &mut self,
        op: &str,
        variant: impl Into<String>,
        inputs: Vec<Tensor>,
        f: impl Fn(&[Var]) -> Var + 'static,
        reference: impl Fn(&ReferenceInput) -> Expected + 'static,
        bound: Bound,
    ) {
        let shapes = inputs.iter().map(|t| shape_str(t.dims())).collect::<Vec<_>>().join("x");
        self.cases.push(KernelCase {
            op: op.to_string(),
            variant: variant.into(),
            shapes,
            inputs,
            f: Box::new(f),
            reference: Box::new(reference),
            bound,
        });
    }
}

/// Every op family's f32 cases at the given sizes, inputs drawn from `gen`.
pub fn cases(s: KernelSizes, gen: &mut Generator) -> Vec<KernelCase> {
    let mut b = Builder { cases: Vec::new(), gen };
    elementwise::unary_cases(&mut b, s);
    elementwise::binary_cases(&mut b, s);
    reductions::reduction_cases(&mut b, s);
    rows::row_cases(&mut b, s);
    matmul::matmul_cases(&mut b, s);
    index::index_cases(&mut b, s);
    attention::attention_cases(&mut b, s);
    grouped_attention::grouped_attention_cases(&mut b, s);
    loss_and_dropout::loss_and_dropout_cases(&mut b, s);
    llama::llama_cases(&mut b, s);
    b.cases
}
