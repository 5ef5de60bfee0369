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

mod grouped_attention;

use autograd::loss::{cross_entropy, IGNORE_INDEX};
use autograd::ops::attention::attention;
use autograd::ops::dropout::dropout;
use autograd::ops::layer_norm::layer_norm;
use autograd::ops::linear::linear;
use autograd::{gradcheck_fast, GradcheckOptions, GradcheckReport, Var};
use kernels::cpu::attention::{attention_backward_reference, attention_forward_reference};
use kernels::cpu::cross_entropy::{cross_entropy_backward_reference, cross_entropy_reference};
use kernels::cpu::gelu::{gelu_derivative_reference, gelu_reference};
use kernels::cpu::gemm::{gemm_reference, GemmShape, Strided};
use kernels::cpu::rows::{
    layer_norm_backward_reference, layer_norm_reference, log_softmax_backward_reference, log_softmax_reference,
    softmax_backward_reference, softmax_reference,
};
use tensor::{AttentionOptions, DType, Generator, Qkv, Tensor};

mod llama;

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
    unary_cases(&mut b, s);
    binary_cases(&mut b, s);
    reduction_cases(&mut b, s);
    row_cases(&mut b, s);
    matmul_cases(&mut b, s);
    index_cases(&mut b, s);
    attention_cases(&mut b, s);
    grouped_attention::grouped_attention_cases(&mut b, s);
    loss_and_dropout_cases(&mut b, s);
    llama::llama_cases(&mut b, s);
    b.cases
}

// ---------------------------------------------------------------------------
// Elementwise functions of one input and scalar ops.

type Scalar = fn(f64) -> f64;

/// y = f(x) elementwise, with f, f′ and f″ in f64. An f32 result is f
/// evaluated at the exact input with a few roundings inside, each relative
/// to an intermediate: the error is a few u·(|f(x)| + |x·f′(x)|), the
/// second term being a rounding of the argument carried through f. The
/// backward v·f′(x) likewise: a few u·|v|·(|f′(x)| + |x·f″(x)| + |y·∂f′/∂y|),
/// the last term for a backward that computes f′ from the saved output y
/// (tanh's 1 − y², sigmoid's y·(1 − y)), which carries y's rounding.
fn unary_reference(f: Scalar, df: Scalar, d2f: Scalar, output_term: Scalar) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let out = Checked::new(
            x.iter().map(|&x| f(x)).collect(),
            x.iter().map(|&x| f(x).abs() + (x * df(x)).abs()).collect(),
        );
        let grad = Checked::new(
            x.iter().zip(r.v).map(|(&x, &v)| v * df(x)).collect(),
            x.iter()
                .zip(r.v)
                .map(|(&x, &v)| v.abs() * (df(x).abs() + (x * d2f(x)).abs() + output_term(x).abs()))
                .collect(),
        );
        Expected { out, grads: vec![grad] }
    }
}

fn gelu_second_derivative(x: f64) -> f64 {
    // Only for the bound's scale, so a central difference is plenty.
    let h = 1e-4 * x.abs().max(1.0);
    (gelu_derivative_reference(x + h) - gelu_derivative_reference(x - h)) / (2.0 * h)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn unary_cases(b: &mut Builder, s: KernelSizes) {
    let dims = [s.rows, s.width];
    let formula =
        |c: u32| format!("{c}·u·(|f(x)| + |x·f'(x)|); backward {c}·u·|v|·(|f'(x)| + |x·f''(x)| + |y·∂f'/∂y|)");
    let wide = b.uniform(&dims, -4.0, 4.0);
    let positive = b.uniform(&dims, 0.05, 4.0);
    let kinked = b.away_from_zero(&dims);
    // (name, input, op, f, f', f'', y·∂f'/∂y, c): c counts the roundings of
    // the f32 code: 1 for an exact op (neg, abs, relu), 2 for one rounding
    // (the scalar ops), 4 for a library call or the 2-ulp fast_exp and its
    // uses; 32 for gelu, whose argument u = √(2/π)(x + 0.044715x³) takes
    // several roundings that count three times each (x·du/dx ≈ 3u for
    // large x), before exp and a division.
    type Case = (&'static str, Tensor, fn(&Var) -> Var, Scalar, Scalar, Scalar, Scalar, u32);
    let none: Scalar = |_| 0.0;
    let list: Vec<Case> = vec![
        ("exp", wide.clone(), |v| v.exp(), f64::exp, f64::exp, f64::exp, none, 4),
        ("log", positive.clone(), |v| v.log(), f64::ln, |x| 1.0 / x, |x| -1.0 / (x * x), none, 4),
        ("sqrt", positive.clone(), |v| v.sqrt(), f64::sqrt, |x| 0.5 / x.sqrt(), |x| -0.25 / (x * x.sqrt()), none, 4),
        (
            "powf",
            positive.clone(),
            |v| v.powf(2.5),
            |x| x.powf(2.5),
            |x| 2.5 * x.powf(1.5),
            |x| 3.75 * x.sqrt(),
            none,
            4,
        ),
        (
            "tanh",
            wide.clone(),
            |v| v.tanh(),
            f64::tanh,
            |x| 1.0 - x.tanh().powi(2),
            |x| -2.0 * x.tanh() * (1.0 - x.tanh().powi(2)),
            |x| 2.0 * x.tanh().powi(2),
            4,
        ),
        (
            "sigmoid",
            wide.clone(),
            |v| v.sigmoid(),
            sigmoid,
            |x| sigmoid(x) * (1.0 - sigmoid(x)),
            |x| sigmoid(x) * (1.0 - sigmoid(x)) * (1.0 - 2.0 * sigmoid(x)),
            |x| sigmoid(x) * (1.0 - 2.0 * sigmoid(x)),
            4,
        ),
        (
            "gelu",
            wide.clone(),
            |v| v.gelu(),
            gelu_reference,
            gelu_derivative_reference,
            gelu_second_derivative,
            none,
            32,
        ),
        ("neg", wide.clone(), |v| v.neg(), |x| -x, |_| -1.0, none, none, 1),
        ("abs", kinked.clone(), |v| v.abs(), f64::abs, f64::signum, none, none, 1),
        ("relu", kinked.clone(), |v| v.relu(), |x| x.max(0.0), |x| if x > 0.0 { 1.0 } else { 0.0 }, none, none, 1),
        ("mul_scalar", wide.clone(), |v| v.mul_scalar(-2.5), |x| -2.5 * x, |_| -2.5, none, none, 2),
        ("add_scalar", wide.clone(), |v| v.add_scalar(0.75), |x| x + 0.75, |_| 1.0, none, none, 2),
    ];
    for (name, input, op, f, df, d2f, output_term, c) in list {
        b.add(
            name,
            "elementwise",
            vec![input],
            move |v| op(&v[0]),
            unary_reference(f, df, d2f, output_term),
            bound(c as f64, formula(c)),
        );
    }
}

// ---------------------------------------------------------------------------
// Binary ops with broadcasting.

/// y = f(a, b) and its partial derivatives, in f64.
type BinaryFn = fn(f64, f64) -> (f64, f64, f64);

/// a `[rows, cols]`-broadcast op b, by plain loops: element (i, j) reads
/// a and b at their own strides (0 along a broadcast dim). The gradient of
/// a broadcast operand sums v·∂y over the dims it was stretched along.
fn broadcast_reference(
    rows: usize,
    cols: usize,
    a_strides: (usize, usize),
    b_strides: (usize, usize),
    f: BinaryFn,
) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let (a, bv) = (&r.xs[0], &r.xs[1]);
        let mut y = vec![0.0; rows * cols];
        let (mut da, mut db) = (vec![0.0; a.len()], vec![0.0; bv.len()]);
        let (mut sa, mut sb) = (vec![0.0; a.len()], vec![0.0; bv.len()]);
        for i in 0..rows {
            for j in 0..cols {
                let ia = i * a_strides.0 + j * a_strides.1;
                let ib = i * b_strides.0 + j * b_strides.1;
                let (value, dya, dyb) = f(a[ia], bv[ib]);
                let v = r.v[i * cols + j];
                y[i * cols + j] = value;
                da[ia] += v * dya;
                db[ib] += v * dyb;
                sa[ia] += (v * dya).abs();
                sb[ib] += (v * dyb).abs();
            }
        }
        Expected { out: Checked::relative(y), grads: vec![Checked::new(da, sa), Checked::new(db, sb)] }
    }
}

fn binary_cases(b: &mut Builder, s: KernelSizes) {
    let (m, n) = (s.rows, s.width);
    let a = b.away_from_zero(&[m, n]);
    let row = b.away_from_zero(&[n]);
    let col = b.away_from_zero(&[m, 1]);
    let row1 = b.away_from_zero(&[1, n]);
    let denom_row = b.uniform(&[n], 0.5, 2.0);
    let denom_row1 = b.uniform(&[1, n], 0.5, 2.0);
    // Each output is one correctly rounded operation (≤ u·|y|); a
    // broadcast operand's gradient sums the rounded v·∂y terms in f64
    // (a few u each, and no growth with their number).
    let formula = "2·u·|y|; backward 2·u·Σ|v·∂y/∂x| over the broadcast";
    type Bin = fn(&Var, &Var) -> Var;
    let ops: [(&str, Bin, BinaryFn); 6] = [
        ("add", Var::add, |a, b| (a + b, 1.0, 1.0)),
        ("sub", Var::sub, |a, b| (a - b, 1.0, -1.0)),
        ("mul", Var::mul, |a, b| (a * b, b, a)),
        ("div", Var::div, |a, b| (a / b, 1.0 / b, -a / (b * b))),
        ("maximum", Var::maximum, |a, b| if a >= b { (a, 1.0, 0.0) } else { (b, 0.0, 1.0) }),
        ("minimum", Var::minimum, |a, b| if a <= b { (a, 1.0, 0.0) } else { (b, 0.0, 1.0) }),
    ];
    // maximum and minimum take operands on two interleaved grids (see
    // `on_grid`), so that no pair is within the finite-difference step.
    let (a_grid, col_grid) = (b.on_grid(&[m, n], 0.0), b.on_grid(&[m, 1], 0.0));
    let (row_grid, row1_grid) = (b.on_grid(&[n], 0.5), b.on_grid(&[1, n], 0.5));
    for (name, op, f) in ops {
        let (lhs, lhs_col, rhs_row, rhs_row1) = match name {
            "div" => (a.clone(), col.clone(), denom_row.clone(), denom_row1.clone()),
            "maximum" | "minimum" => (a_grid.clone(), col_grid.clone(), row_grid.clone(), row1_grid.clone()),
            _ => (a.clone(), col.clone(), row.clone(), row1.clone()),
        };
        b.add(
            name,
            "row broadcast",
            vec![lhs, rhs_row],
            move |v| op(&v[0], &v[1]),
            broadcast_reference(m, n, (n, 1), (0, 1), f),
            bound(2.0, formula),
        );
        b.add(
            name,
            "column by row",
            vec![lhs_col, rhs_row1],
            move |v| op(&v[0], &v[1]),
            broadcast_reference(m, n, (1, 0), (0, 1), f),
            bound(2.0, formula),
        );
    }
}

// ---------------------------------------------------------------------------
// Reductions.

/// x `[outer, n, inner]` reduced along the middle: calls `row` with the n
/// values of each (outer, inner) pair, in order, and where to write.
fn for_each_lane(dims: [usize; 3], mut row: impl FnMut(usize, Vec<usize>)) {
    let [outer, n, inner] = dims;
    for o in 0..outer {
        for i in 0..inner {
            row(o * inner + i, (0..n).map(|j| (o * n + j) * inner + i).collect());
        }
    }
}

/// The three dims of x `[d0, d1, d2]` seen as `[outer, n, inner]` around `dim`.
fn around(dims: &[usize], dim: usize) -> [usize; 3] {
    [dims[..dim].iter().product(), dims[dim], dims[dim + 1..].iter().product()]
}

#[derive(Clone, Copy)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Var,
}

fn reduction_reference(dims: [usize; 3], kind: Reduction) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let n = dims[1] as f64;
        let outputs = dims[0] * dims[2];
        let (mut y, mut ys) = (vec![0.0; outputs], vec![0.0; outputs]);
        let (mut g, mut gs) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for_each_lane(dims, |o, idx| {
            let v = r.v[o];
            match kind {
                Reduction::Sum | Reduction::Mean => {
                    let div = if matches!(kind, Reduction::Mean) { n } else { 1.0 };
                    y[o] = idx.iter().map(|&i| x[i]).sum::<f64>() / div;
                    ys[o] = idx.iter().map(|&i| x[i].abs()).sum::<f64>() / div;
                    for &i in &idx {
                        g[i] = v / div;
                        gs[i] = (v / div).abs();
                    }
                }
                Reduction::Max => {
                    // The first largest takes the gradient (ties are
                    // improbable in random data).
                    let best = idx.iter().copied().fold(idx[0], |b, i| if x[i] > x[b] { i } else { b });
                    y[o] = x[best];
                    ys[o] = x[best].abs();
                    g[best] = v;
                    gs[best] = v.abs();
                }
                Reduction::Var => {
                    let mean = idx.iter().map(|&i| x[i]).sum::<f64>() / n;
                    y[o] = idx.iter().map(|&i| (x[i] - mean).powi(2)).sum::<f64>() / (n - 1.0);
                    ys[o] = y[o];
                    let mean_abs = mean.abs();
                    for &i in &idx {
                        g[i] = v * 2.0 * (x[i] - mean) / (n - 1.0);
                        gs[i] = (v * 2.0 * (x[i].abs() + mean_abs) / (n - 1.0)).abs();
                    }
                }
            }
        });
        Expected { out: Checked::new(y, ys), grads: vec![Checked::new(g, gs)] }
    }
}

fn reduction_cases(b: &mut Builder, s: KernelSizes) {
    let dims = [4, s.rows, s.width];
    let x = b.away_from_zero(&dims);
    let spread_out = b.distinct(&dims);
    // Sums and means add in f64 and round once (u·Σ|x|); max copies an
    // element; var's backward 2(x − mean)/(n − 1) takes a few roundings.
    let sum_formula = "2·u·Σ|x| (added in f64, rounded once); backward 2·u·|v|/n";
    for dim in 0..3 {
        let d = dim as isize;
        let lanes = around(&dims, dim);
        let xs = x.clone();
        b.add(
            "sum",
            format!("dim={dim}"),
            vec![xs.clone()],
            move |v| v[0].sum(d, false),
            reduction_reference(lanes, Reduction::Sum),
            bound(2.0, sum_formula),
        );
        b.add(
            "mean",
            format!("dim={dim}, keepdim"),
            vec![xs.clone()],
            move |v| v[0].mean(d, true),
            reduction_reference(lanes, Reduction::Mean),
            bound(2.0, sum_formula),
        );
        b.add(
            "max",
            format!("dim={dim}"),
            vec![spread_out.clone()],
            move |v| v[0].max(d, false),
            reduction_reference(lanes, Reduction::Max),
            bound(1.0, "exact (a copy); backward exact"),
        );
    }
    for dim in [0usize, 2] {
        let d = dim as isize;
        b.add(
            "var",
            format!("dim={dim}, unbiased"),
            vec![x.clone()],
            move |v| v[0].var(d, false, true),
            reduction_reference(around(&dims, dim), Reduction::Var),
            bound(8.0, "8·u·var; backward 8·u·|v|·2(|x| + |mean|)/(n−1)"),
        );
    }
    let all = [1, x.numel(), 1];
    b.add(
        "sum_all",
        "all elements",
        vec![x.clone()],
        |v| v[0].sum_all(),
        reduction_reference(all, Reduction::Sum),
        bound(2.0, sum_formula),
    );
    b.add(
        "mean_all",
        "all elements",
        vec![x.clone()],
        |v| v[0].mean_all(),
        reduction_reference(all, Reduction::Mean),
        bound(2.0, sum_formula),
    );
}

// ---------------------------------------------------------------------------
// Row-wise fused kernels: softmax, log_softmax, layer norm.

/// The widest spread max − min of any row of `n`: exp(x − max) of an f32
/// x − max rounded by u·|x − max| is off by that much relative, so the
/// softmax bounds grow with it.
fn widest_row_range(x: &[f64], n: usize) -> f64 {
    x.chunks(n)
        .map(|r| r.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v)) - r.iter().fold(f64::INFINITY, |m, &v| m.min(v)))
        .fold(0.0, f64::max)
}

/// `x` `[rows, n]` with dim 0 moved last: `[n, rows]`, and back.
fn transpose(x: &[f64], rows: usize, n: usize) -> Vec<f64> {
    let mut t = vec![0.0; x.len()];
    for i in 0..rows {
        for j in 0..n {
            t[j * rows + i] = x[i * n + j];
        }
    }
    t
}

/// softmax or log_softmax over the last dim of `[rows, n]` (or over dim 0
/// when `along_rows`, by transposing around the reference).
fn softmax_family_reference(
    rows: usize,
    n: usize,
    log: bool,
    along_rows: bool,
) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let (x, v) = if along_rows {
            (transpose(&r.xs[0], rows, n), transpose(r.v, rows, n))
        } else {
            (r.xs[0].clone(), r.v.to_vec())
        };
        let (len, count) = if along_rows { (rows, n) } else { (n, rows) };
        let spread = 1.0 + widest_row_range(&x, len);
        let (y, dx, y_scale, dx_scale) = if log {
            let y = log_softmax_reference(&x, len);
            let dx = log_softmax_backward_reference(&y, &v, len);
            // y = (x − max) − ln Σ: a few u·(|y| + spread); dx = v − p·Σv.
            let ys: Vec<f64> = y.iter().map(|y| y.abs() + spread).collect();
            let mut dxs = vec![0.0; x.len()];
            for k in 0..count {
                let total: f64 = v[k * len..(k + 1) * len].iter().map(|v| v.abs()).sum();
                for j in k * len..(k + 1) * len {
                    dxs[j] = v[j].abs() + y[j].exp() * total * spread;
                }
            }
            (y, dx, ys, dxs)
        } else {
            let y = softmax_reference(&x, len);
            let dx = softmax_backward_reference(&y, &v, len);
            // y relative: a few u·spread·y; dx = y·(v − Σ v·y).
            let ys: Vec<f64> = y.iter().map(|y| y * spread).collect();
            let mut dxs = vec![0.0; x.len()];
            for k in 0..count {
                let range = k * len..(k + 1) * len;
                let dot: f64 = range.clone().map(|j| (v[j] * y[j]).abs()).sum();
                for j in range {
                    dxs[j] = y[j] * (v[j].abs() + dot) * spread;
                }
            }
            (y, dx, ys, dxs)
        };
        let back = |t: Vec<f64>| if along_rows { transpose(&t, n, rows) } else { t };
        Expected { out: Checked::new(back(y), back(y_scale)), grads: vec![Checked::new(back(dx), back(dx_scale))] }
    }
}

fn layer_norm_case_reference(n: usize, affine: bool) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let (gamma, beta) = if affine { (Some(&r.xs[1][..]), Some(&r.xs[2][..])) } else { (None, None) };
        let (y, mean, rstd) = layer_norm_reference(x, gamma, beta, 1e-5, n);
        let (dx, dgamma, dbeta) = layer_norm_backward_reference(x, gamma, &mean, &rstd, r.v, n);
        // Forward: x̂ = (x − mean)·rstd is off by a few u·(|x̂| + |mean|·rstd)
        // (the mean's rounding, carried), then γ and β act once each.
        let g = |j: usize| gamma.map_or(1.0, |g| g[j].abs());
        let ys: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, &xi)| {
                let (row, j) = (i / n, i % n);
                let x_hat = ((xi - mean[row]) * rstd[row]).abs();
                (x_hat + 1.0 + mean[row].abs() * rstd[row]) * g(j) + beta.map_or(0.0, |b| b[j].abs())
            })
            .collect();
        // Backward: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) cancels, so its
        // bound is normwise per row: rstd·(|g| + mean|g| + |x̂|·mean|g·x̂|)
        // at the row's largest.
        let mut dxs = vec![0.0; x.len()];
        for (row, chunk) in dxs.chunks_mut(n).enumerate() {
            let xh = |j: usize| ((x[row * n + j] - mean[row]) * rstd[row]).abs();
            let gj = |j: usize| (r.v[row * n + j] * g(j)).abs();
            let mean_g = (0..n).map(gj).sum::<f64>() / n as f64;
            let mean_gx = (0..n).map(|j| gj(j) * xh(j)).sum::<f64>() / n as f64;
            let largest = (0..n).map(|j| rstd[row] * (gj(j) + mean_g + xh(j) * mean_gx)).fold(0.0, f64::max);
            chunk.fill(largest * (1.0 + mean[row].abs() * rstd[row]));
        }
        let mut grads = vec![Checked::new(dx, dxs)];
        if affine {
            // dγ = Σ_rows v·x̂, dβ = Σ_rows v: sums of products.
            let mut gs = vec![0.0; n];
            let mut bs = vec![0.0; n];
            for (i, &xi) in x.iter().enumerate() {
                let (row, j) = (i / n, i % n);
                gs[j] += (r.v[i] * (xi - mean[row]) * rstd[row]).abs() * (1.0 + mean[row].abs() * rstd[row]);
                bs[j] += r.v[i].abs();
            }
            grads.push(Checked::new(dgamma, gs));
            grads.push(Checked::new(dbeta, bs));
        }
        Expected { out: Checked::new(y, ys), grads }
    }
}

fn row_cases(b: &mut Builder, s: KernelSizes) {
    let (m, n) = (s.rows, s.width);
    let x = b.uniform(&[m, n], -4.0, 4.0);
    // 16-lane sums of n terms in f32: √n rounding growth (realistic, not
    // the worst case n), times the spread of the row (see widest_row_range).
    let growth = (n as f64).sqrt();
    let sm = format!("2·√n·u·(1 + R)·y, R the widest row's max − min, n={n}; backward 2·√n·u·(1 + R)·y·(|v| + Σ|v·y|)");
    let lsm = format!("2·√n·u·(|y| + 1 + R), n={n}; backward 2·√n·u·(|v| + (1 + R)·p·Σ|v|)");
    b.add(
        "softmax",
        "dim=-1",
        vec![x.clone()],
        |v| v[0].softmax(-1),
        softmax_family_reference(m, n, false, false),
        bound(2.0 * growth, sm.clone()),
    );
    b.add(
        "softmax",
        "dim=0",
        vec![x.clone()],
        |v| v[0].softmax(0),
        softmax_family_reference(m, n, false, true),
        bound(2.0 * (m as f64).sqrt(), sm.replace("n=", "n=rows=").replace(&format!("n={n}"), &format!("n={m}"))),
    );
    b.add(
        "log_softmax",
        "dim=-1",
        vec![x.clone()],
        |v| v[0].log_softmax(-1),
        softmax_family_reference(m, n, true, false),
        bound(2.0 * growth, lsm.clone()),
    );
    b.add(
        "log_softmax",
        "dim=0",
        vec![x.clone()],
        |v| v[0].log_softmax(0),
        softmax_family_reference(m, n, true, true),
        bound(2.0 * (m as f64).sqrt(), lsm.replace(&format!("n={n}"), &format!("n={m}"))),
    );

    let xo = x.add_scalar(1.5); // a mean away from zero, as activations have
    let (gamma, beta) = (b.uniform(&[n], 0.5, 1.5), b.uniform(&[n], -0.5, 0.5));
    let ln = format!(
        "2·√n·u·((|x̂| + 1 + |mean|·rstd)·|γ| + |β|), n={n}; backward dx normwise per row 2·√n·u·(1 + |mean|·rstd)·max rstd·(|g| + mean|g| + |x̂|·mean|g·x̂|), dγ, dβ 2·√n·u·Σ|terms|"
    );
    b.add(
        "layer_norm",
        "affine",
        vec![xo.clone(), gamma, beta],
        |v| layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5),
        layer_norm_case_reference(n, true),
        bound(2.0 * growth, ln.clone()),
    );
    b.add(
        "layer_norm",
        "no affine",
        vec![xo],
        |v| layer_norm(&v[0], None, 1e-5),
        layer_norm_case_reference(n, false),
        bound(2.0 * growth, ln),
    );
}

// ---------------------------------------------------------------------------
// Matrix products.

/// One dense operand as the GEMM reference reads it: row-major `[rows,
/// cols]`, or the transpose of a stored `[cols, rows]`.
fn operand(offset: usize, rows: usize, cols: usize, transposed: bool) -> Strided {
    if transposed {
        Strided::row_major(offset, rows).transposed()
    } else {
        Strided::row_major(offset, cols)
    }
}

fn abs(x: &[f64]) -> Vec<f64> {
    x.iter().map(|x| x.abs()).collect()
}

/// C = A·B for `batch` products (an operand with `batch_a` = 1 is shared),
/// A `[m, k]` stored as given or transposed, likewise B, and the VJP
/// dA = v·Bᵀ, dB = Aᵀ·v, all by `gemm_reference`. Run again on |A|, |B|,
/// |v| it gives each element's Σ|aₖbₖ|, the scale of its rounding error.
#[derive(Clone, Copy)]
struct Product {
    batch: usize,
    shared_b: bool,
    shape: GemmShape,
    a_t: bool,
    b_t: bool,
}

impl Product {
    fn forward_backward(self, a: &[f64], b: &[f64], v: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let GemmShape { m, k, n } = self.shape;
        let (mut c, mut da, mut db) = (Vec::new(), Vec::new(), vec![0.0; b.len()]);
        for e in 0..self.batch {
            let (ao, bo) = (e * m * k, if self.shared_b { 0 } else { e * k * n });
            let (sa, sb) = (operand(ao, m, k, self.a_t), operand(bo, k, n, self.b_t));
            let sv = Strided::row_major(e * m * n, n);
            c.extend(gemm_reference(self.shape, a, sa, b, sb));
            // dA [m, k] = v [m, n] · Bᵀ [n, k], laid out as A is stored.
            let da_e = gemm_reference(GemmShape { m, k: n, n: k }, v, sv, b, sb.transposed());
            da.extend(if self.a_t { transpose(&da_e, m, k) } else { da_e });
            // dB [k, n] = Aᵀ [k, m] · v [m, n], summed over a shared B.
            let db_e = gemm_reference(GemmShape { m: k, k: m, n }, a, sa.transposed(), v, sv);
            let db_e = if self.b_t { transpose(&db_e, k, n) } else { db_e };
            for (d, x) in db[bo..bo + k * n].iter_mut().zip(db_e) {
                *d += x;
            }
        }
        (c, da, db)
    }

    fn reference(self, bias: bool) -> impl Fn(&ReferenceInput) -> Expected {
        move |r: &ReferenceInput| {
            let (mut c, da, db) = self.forward_backward(&r.xs[0], &r.xs[1], r.v);
            let (mut cs, das, dbs) = self.forward_backward(&abs(&r.xs[0]), &abs(&r.xs[1]), &abs(r.v));
            let mut grads = vec![Checked::new(da, das), Checked::new(db, dbs)];
            if bias {
                let n = self.shape.n;
                let bias = &r.xs[2];
                let (mut dbias, mut dbias_s) = (vec![0.0; n], vec![0.0; n]);
                for (i, (c, cs)) in c.iter_mut().zip(cs.iter_mut()).enumerate() {
                    *c += bias[i % n];
                    *cs += bias[i % n].abs();
                    dbias[i % n] += r.v[i];
                    dbias_s[i % n] += r.v[i].abs();
                }
                grads.push(Checked::new(dbias, dbias_s));
            }
            Expected { out: Checked::new(c, cs), grads }
        }
    }
}

fn matmul_cases(b: &mut Builder, s: KernelSizes) {
    let (m, k, n) = (s.rows, s.inner, s.width);
    // A dot product of length K in f32 (FMA chains, K cut in blocks) is off
    // by at most ~K·u·Σ|aₖbₖ| in the worst case; rounding errors of random
    // sign grow like √K, which is the realistic bound used here, with K the
    // longest contraction of the forward and the two backward products.
    let longest = m.max(k).max(n) as f64;
    let formula = format!("2·√K·u·Σ|aₖbₖ| per element, K = longest contraction = {}", m.max(k).max(n));
    let tol = bound(2.0 * longest.sqrt(), formula);
    let shape = GemmShape { m, k, n };
    let plain = Product { batch: 1, shared_b: false, shape, a_t: false, b_t: false };
    let (a, w) = (b.uniform(&[m, k], -1.0, 1.0), b.uniform(&[k, n], -1.0, 1.0));
    b.add("matmul", "plain", vec![a.clone(), w.clone()], |v| v[0].matmul(&v[1]), plain.reference(false), tol.clone());
    let (at, wt) = (b.uniform(&[k, m], -1.0, 1.0), b.uniform(&[n, k], -1.0, 1.0));
    let both_t = Product { a_t: true, b_t: true, ..plain };
    b.add(
        "matmul",
        "transposed operands",
        vec![at, wt.clone()],
        |v| v[0].t().matmul(&v[1].t()),
        both_t.reference(false),
        tol.clone(),
    );
    // Batched: three products, split across threads by batch entry.
    let bm = m / 3 + 1;
    let batched = Product { batch: 3, shape: GemmShape { m: bm, k, n }, ..plain };
    let (ab, wb) = (b.uniform(&[3, bm, k], -1.0, 1.0), b.uniform(&[3, k, n], -1.0, 1.0));
    b.add("matmul", "batched", vec![ab.clone(), wb], |v| v[0].matmul(&v[1]), batched.reference(false), tol.clone());
    // A linear layer: x [3, bm, k] · Wᵀ (W stored [n, k]) + bias, the
    // weight shared by the batch, as in a model.
    let linear_product = Product { batch: 3, shared_b: true, shape: GemmShape { m: bm, k, n }, a_t: false, b_t: true };
    let bias = b.uniform(&[n], -1.0, 1.0);
    b.add(
        "linear",
        "bias, batched input",
        vec![ab, wt.clone(), bias],
        |v| linear(&v[0], &v[1], Some(&v[2])),
        linear_product.reference(true),
        tol.clone(),
    );
    // One row against W [n, k]: a decode step, the matrix-vector kernel.
    let row = Product { batch: 1, shared_b: true, shape: GemmShape { m: 1, k, n }, a_t: false, b_t: true };
    let x = b.uniform(&[1, k], -1.0, 1.0);
    b.add("linear", "one row (matrix-vector)", vec![x, wt], |v| linear(&v[0], &v[1], None), row.reference(false), tol);
}

// ---------------------------------------------------------------------------
// Indexing: embedding, index_select, gather.

/// out[o] = x[source[o]] for a map from output to input elements; the
/// backward adds each v[o] into its source.
fn lookup_reference(sources: Vec<usize>) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let x = &r.xs[0];
        let out: Vec<f64> = sources.iter().map(|&i| x[i]).collect();
        let (mut g, mut gs) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for (o, &i) in sources.iter().enumerate() {
            g[i] += r.v[o];
            gs[i] += r.v[o].abs();
        }
        Expected { out: Checked::relative(out), grads: vec![Checked::new(g, gs)] }
    }
}

fn index_cases(b: &mut Builder, s: KernelSizes) {
    let (vocab, n) = (s.rows, s.width);
    let table = b.uniform(&[vocab, n], -1.0, 1.0);
    // 4·vocab lookups: each row is read about 4 times, some more.
    let lookups = 4 * vocab;
    let ids: Vec<i64> = (0..lookups).map(|i| ((i * 7 + i / 3) % vocab) as i64).collect();
    let most_repeats = (0..vocab).map(|r| ids.iter().filter(|&&i| i as usize == r).count()).max().unwrap_or(1);
    // A copy forward; the backward adds each row's r reads in f32, so it is
    // off by up to r·u·Σ|v| (r the most reads of one row).
    let formula = format!("exact forward; backward r·u·Σ|v|, r = {most_repeats} most reads of one row");
    let tol = bound(most_repeats as f64, formula);
    let ids_t = Tensor::from_vec(ids.clone(), [4, vocab]).unwrap();
    let sources: Vec<usize> = ids.iter().flat_map(|&i| (0..n).map(move |j| i as usize * n + j)).collect();
    let it = ids_t.clone();
    b.add(
        "embedding",
        "ids [4, vocab], repeats",
        vec![table.clone()],
        move |v| v[0].embedding(&it),
        lookup_reference(sources.clone()),
        tol.clone(),
    );
    let flat = ids_t.reshape(&[-1]);
    b.add(
        "index_select",
        "dim=0, repeats",
        vec![table.clone()],
        move |v| v[0].index_select(0, &flat),
        lookup_reference(sources),
        tol.clone(),
    );
    // Columns: every third, then column 0 again and the last.
    let mut cols: Vec<i64> = (0..n as i64).step_by(3).collect();
    cols.extend([0, n as i64 - 1]);
    let col_sources: Vec<usize> = (0..vocab).flat_map(|r| cols.iter().map(move |&c| r * n + c as usize)).collect();
    let ct = Tensor::from_vec(cols.clone(), [cols.len()]).unwrap();
    b.add(
        "index_select",
        "dim=1",
        vec![table.clone()],
        move |v| v[0].index_select(1, &ct),
        lookup_reference(col_sources),
        bound(2.0, "exact forward; backward 2·u·Σ|v| (a column read at most twice)"),
    );
    // gather along dim 1: 5 picks per row.
    let picks: Vec<i64> = (0..vocab * 5).map(|i| ((i * 131 + 17) % n) as i64).collect();
    let gather_sources: Vec<usize> = picks.iter().enumerate().map(|(o, &c)| (o / 5) * n + c as usize).collect();
    let gt = Tensor::from_vec(picks, [vocab, 5]).unwrap();
    b.add(
        "gather",
        "dim=1",
        vec![table],
        move |v| v[0].gather(1, &gt),
        lookup_reference(gather_sources),
        bound(5.0, "exact forward; backward 5·u·Σ|v| (5 picks per row)"),
    );
}

// ---------------------------------------------------------------------------
// Attention.

/// Where Q, K, V and the output of head (b, h) lie, per time step t and
/// channel c, for one input form.
#[derive(Clone, Copy)]
struct AttentionLayout {
    batch: usize,
    heads: usize,
    t: usize,
    d: usize,
    packed: bool,
}

impl AttentionLayout {
    /// Flat index of element (t, c) of operand `which` (0 = Q, 1 = K, 2 = V)
    /// of head (b, h), in input `which` (heads first) or the packed input.
    fn input(&self, which: usize, b: usize, h: usize, t: usize, c: usize) -> (usize, usize) {
        let (hs, d) = (self.heads, self.d);
        if self.packed {
            let width = 3 * hs * d;
            (0, (b * self.t + t) * width + which * hs * d + h * d + c)
        } else {
            (which, ((b * hs + h) * self.t + t) * d + c)
        }
    }
    /// Flat index of the output's element: `[B, H, T, D]`, or `[B, T, C]`.
    fn output(&self, b: usize, h: usize, t: usize, c: usize) -> usize {
        let (hs, d) = (self.heads, self.d);
        if self.packed {
            (b * self.t + t) * hs * d + h * d + c
        } else {
            ((b * hs + h) * self.t + t) * d + c
        }
    }
}

fn attention_reference(l: AttentionLayout) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let (t, d) = (l.t, l.d);
        let out_len = l.batch * l.heads * t * d;
        let mut out = vec![0.0; out_len];
        let mut grads: Vec<Vec<f64>> = r.xs.iter().map(|x| vec![0.0; x.len()]).collect();
        let mut spread: f64 = 0.0;
        for bi in 0..l.batch {
            for h in 0..l.heads {
                let gather = |which: usize| -> Vec<f64> {
                    (0..t * d)
                        .map(|i| {
                            let (input, at) = l.input(which, bi, h, i / d, i % d);
                            r.xs[input][at]
                        })
                        .collect()
                };
                let (q, k, v) = (gather(0), gather(1), gather(2));
                let d_out: Vec<f64> = (0..t * d).map(|i| r.v[l.output(bi, h, i / d, i % d)]).collect();
                let (o, p) = attention_forward_reference(&q, &k, &v, t, t, d);
                let (dq, dk, dv) = attention_backward_reference(&q, &k, &v, &p, &d_out, t, d);
                for i in 0..t * d {
                    out[l.output(bi, h, i / d, i % d)] = o[i];
                    for (which, g) in [(0, &dq), (1, &dk), (2, &dv)] {
                        let (input, at) = l.input(which, bi, h, i / d, i % d);
                        grads[input][at] = g[i];
                    }
                }
                // The widest spread of a row of scores, over visible keys.
                let scale = 1.0 / (d as f64).sqrt();
                for i in 0..t {
                    let s: Vec<f64> =
                        (0..=i).map(|j| scale * (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>()).collect();
                    let hi = s.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
                    let lo = s.iter().fold(f64::INFINITY, |m, &x| m.min(x));
                    spread = spread.max(hi - lo);
                }
            }
        }
        // Normwise: each output is a chain of products and a softmax whose
        // error is relative (1 + R)·u per probability.
        let factor = 1.0 + spread;
        Expected {
            out: Checked::normwise(out, factor),
            grads: grads.into_iter().map(|g| Checked::normwise(g, factor)).collect(),
        }
    }
}

fn attention_cases(b: &mut Builder, s: KernelSizes) {
    let (batch, heads, d) = (2, 2, s.head_dim);
    for (t, packed) in [(s.t, false), (s.ragged_t, false), (s.ragged_t, true)] {
        let layout = AttentionLayout { batch, heads, t, d, packed };
        let opts = AttentionOptions::new(heads);
        // Dot products of length d and t (P·V, dSᵀ·Q) in f32 after a
        // softmax whose probabilities are off by (1 + R)·u relative: each
        // output within 4·√T·u·(1 + R) of its tensor's largest.
        let formula = format!("normwise: 4·√T·u·(1 + R)·max|ref| per tensor, T={t}, R the widest row of scores");
        let tol = bound(4.0 * (t.max(d) as f64).sqrt(), formula);
        if packed {
            let qkv = b.uniform(&[batch, t, 3 * heads * d], -1.0, 1.0);
            b.add(
                "attention",
                format!("packed qkv, causal, T={t}"),
                vec![qkv],
                move |v| attention(Qkv::Packed(&v[0]), &opts),
                attention_reference(layout),
                tol,
            );
        } else {
            let dims = [batch, heads, t, d];
            let (q, k, v) = (b.uniform(&dims, -1.0, 1.0), b.uniform(&dims, -1.0, 1.0), b.uniform(&dims, -1.0, 1.0));
            b.add(
                "attention",
                format!("heads first, causal, T={t}"),
                vec![q, k, v],
                move |v| attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &opts),
                attention_reference(layout),
                tol,
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Cross-entropy and dropout.

fn cross_entropy_case_reference(classes: usize, targets: Vec<i64>) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        let z = &r.xs[0];
        let (total, count) = cross_entropy_reference(z, &targets, classes, IGNORE_INDEX);
        let scale = r.v[0] / count as f64;
        let grad = cross_entropy_backward_reference(z, &targets, classes, IGNORE_INDEX, scale);
        // Each row's loss logsumexp − z_t is off by a few u·(|lse| + |z_t|
        // + 1); the mean adds them in f64. The gradient (p − onehot)·v/N is
        // off by a few u·|v/N|·(p·(1 + R) + onehot).
        let spread = 1.0 + widest_row_range(z, classes);
        let mut loss_scale = 0.0;
        let mut gs = vec![0.0; z.len()];
        for (row, &t) in targets.iter().enumerate() {
            if t == IGNORE_INDEX {
                continue;
            }
            let zr = &z[row * classes..(row + 1) * classes];
            let max = zr.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            let lse = max + zr.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            loss_scale += lse.abs() + zr[t as usize].abs() + 1.0;
            for (j, &x) in zr.iter().enumerate() {
                let onehot = if j == t as usize { 1.0 } else { 0.0 };
                gs[row * classes + j] = scale.abs() * ((x - lse).exp() * spread + onehot);
            }
        }
        let loss = Checked::new(vec![total / count as f64], vec![loss_scale / count as f64]);
        Expected { out: loss, grads: vec![Checked::new(grad, gs)] }
    }
}

fn dropout_reference(p: f64) -> impl Fn(&ReferenceInput) -> Expected {
    move |r: &ReferenceInput| {
        // The mask is random: which elements survived is read from the f32
        // output (x is never zero here); what is checked is that a kept
        // element is x/(1 − p) and its gradient v/(1 − p).
        let keep: Vec<bool> = r.out32.iter().map(|&y| y != 0.0).collect();
        let x = &r.xs[0];
        let out = x.iter().zip(&keep).map(|(&x, &k)| if k { x / (1.0 - p) } else { 0.0 }).collect();
        let grad = r.v.iter().zip(&keep).map(|(&v, &k)| if k { v / (1.0 - p) } else { 0.0 }).collect();
        Expected { out: Checked::relative(out), grads: vec![Checked::relative(grad)] }
    }
}

fn loss_and_dropout_cases(b: &mut Builder, s: KernelSizes) {
    let (rows, classes) = (s.rows, s.inner);
    let logits = b.uniform(&[rows, classes], -4.0, 4.0);
    let targets: Vec<i64> =
        (0..rows).map(|i| if i % 5 == 1 { IGNORE_INDEX } else { ((i * 37) % classes) as i64 }).collect();
    let tt = Tensor::from_vec(targets.clone(), [rows]).unwrap();
    let formula = format!("4·√V·u·mean(|lse| + |z_t| + 1); backward 4·√V·u·|v/N|·(p·(1 + R) + onehot), V={classes}");
    b.add(
        "cross_entropy",
        "ignore_index every 5th row",
        vec![logits],
        move |v| cross_entropy(&v[0], &tt),
        cross_entropy_case_reference(classes, targets),
        bound(4.0 * (classes as f64).sqrt(), formula),
    );

    let x = b.away_from_zero(&[s.rows, s.width]);
    b.add(
        "dropout",
        "p=0.3, training",
        vec![x],
        |v| dropout(&v[0], 0.3, true, &mut Generator::seed(3)),
        dropout_reference(0.3),
        bound(2.0, "2·u·|y| (x·1/(1 − p), rounded twice); backward 2·u·|v/(1 − p)|"),
    );
}
