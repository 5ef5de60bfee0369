//! Kernel-tier cases for elementwise ops: functions of one input (exp,
//! log, sqrt, powf, tanh, sigmoid, GELU, neg, abs, ReLU, the scalar ops)
//! on `[rows, width]`, and the binary ops (add, sub, mul, div, maximum,
//! minimum) with a row or a column broadcast, against f64 values of the
//! same functions and their derivatives computed by plain loops.

use autograd::Var;
use kernels::cpu::gelu::{gelu_derivative_reference, gelu_reference};
use tensor::Tensor;

use super::{bound, Builder, Checked, Expected, KernelSizes, ReferenceInput};

type Scalar = fn(f64) -> f64;

/// y = f(x) elementwise, with f, f′ and f″ in f64. An f32 result is f
/// evaluated at the exact input with a few roundings inside, each relative
/// to an intermediate: the error is a few u·(|f(x)| + |x·f′(x)|), the
/// second term being a rounding of the argument carried through f. The
/// backward v·f′(x) likewise: a few u·|v|·(|f′(x)| + |x·f″(x)| + |y·∂f′/∂y|),
/// the last term for a backward that computes f′ from the saved output y
/// (tanh's 1 − y², sigmoid's y·(1 − y)), which carries y's rounding.
pub(super) fn unary_reference(
    f: Scalar,
    df: Scalar,
    d2f: Scalar,
    output_term: Scalar,
) -> impl Fn(&ReferenceInput) -> Expected {
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

pub(super) fn unary_cases(b: &mut Builder, s: KernelSizes) {
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

pub(super) fn binary_cases(b: &mut Builder, s: KernelSizes) {
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
