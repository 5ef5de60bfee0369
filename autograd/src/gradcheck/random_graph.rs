//! Random op graphs for the gradient check: compositions, not single ops.
//!
//! A chain starts from one input of a given shape (rank 1–3) and applies a
//! few ops, each picked among those that fit the current shape:
//! elementwise functions; add, sub, mul and div against a fresh input that
//! broadcasts (some dims 1 or missing, sometimes stored transposed so the
//! operand is a strided view); the views transpose, permute, narrow,
//! unsqueeze + expand (stride 0) and reshape; sum, mean and var along a dim;
//! softmax and log-softmax; matmul with a fresh `[last, j]` matrix; layer
//! norm. Each fresh operand is one more input, so the check differentiates
//! every one of them. Sizes stay small (at most [`MAX_NUMEL`] elements).
//!
//! Ops with kinks (relu, abs, max, maximum) stay out: a random composition
//! can land exactly on a kink (a row made constant by an expand and then
//! normalised gives exact ties), where no derivative exists for the finite
//! differences to approach. The suite's cases and its tie tests cover them.
//!
//! Every choice comes from one `u64` per step, so a property test that draws
//! those numbers shrinks a failing chain to a short one and a fixed seed
//! repeats it.

use tensor::Generator;

use super::suite::{away_from_zero, positive, shape_str, OpCase};
use crate::ops::layer_norm::layer_norm;
use crate::var::Var;

/// The largest intermediate a chain may build.
pub const MAX_NUMEL: usize = 48;

/// Draws small choices from one number (SplitMix64 between draws).
struct Picks(u64);

impl Picks {
    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 1
    }
}

type Unary = fn(&Var) -> Var;
type Binary = fn(&Var, &Var) -> Var;
type Reduce = fn(&Var, isize, bool) -> Var;

/// One op of a chain, with every parameter fixed.
#[derive(Clone)]
enum Step {
    Unary(Unary),
    /// `x ∘ inputs[input]`, the operand transposed first when `transposed`.
    Binary {
        f: Binary,
        input: usize,
        transposed: bool,
    },
    Transpose(isize, isize),
    Permute(Vec<usize>),
    Narrow {
        dim: isize,
        start: usize,
        len: usize,
    },
    /// Unsqueeze at `dim`, then expand that dim to the shape `to`.
    Expand {
        dim: isize,
        to: Vec<usize>,
    },
    Reshape(Vec<isize>),
    Reduce {
        f: Reduce,
        dim: isize,
        keepdim: bool,
    },
    Softmax(fn(&Var, isize) -> Var, isize),
    Matmul {
        input: usize,
    },
    LayerNorm,
}

impl Step {
    fn apply(&self, x: &Var, inputs: &[Var]) -> Var {
        match self {
            Step::Unary(f) => f(x),
            Step::Binary { f, input, transposed } => {
                let operand = if *transposed { inputs[*input].t() } else { inputs[*input].clone() };
                f(x, &operand)
            }
            Step::Transpose(d0, d1) => x.transpose(*d0, *d1),
            Step::Permute(order) => x.permute(order),
            Step::Narrow { dim, start, len } => x.narrow(*dim, *start, *len),
            Step::Expand { dim, to } => x.unsqueeze(*dim).expand(to.clone()),
            Step::Reshape(shape) => x.reshape(shape),
            Step::Reduce { f, dim, keepdim } => f(x, *dim, *keepdim),
            Step::Softmax(f, dim) => f(x, *dim),
            Step::Matmul { input } => x.matmul(&inputs[*input]),
            Step::LayerNorm => layer_norm(x, None, 1e-5),
        }
    }
}

const UNARY: [(&str, Unary); 8] = [
    ("tanh", Var::tanh),
    ("sigmoid", Var::sigmoid),
    ("exp", Var::exp),
    ("gelu", Var::gelu),
    ("neg", Var::neg),
    ("square", Var::square),
    ("mul_scalar(1.7)", |v| v.mul_scalar(1.7)),
    ("add_scalar(-0.3)", |v| v.add_scalar(-0.3)),
];
const BINARY: [(&str, Binary); 4] = [("add", Var::add), ("sub", Var::sub), ("mul", Var::mul), ("div", Var::div)];
const REDUCE: [(&str, Reduce); 3] =
    [("sum", Var::sum), ("mean", Var::mean), ("var", |v, d, keep| v.var(d, keep, true))];

/// The op families a step picks from.
#[derive(Clone, Copy)]
enum Family {
    Unary,
    Binary,
    Transpose,
    Permute,
    Narrow,
    Expand,
    Reshape,
    Reduce,
    Softmax,
    Matmul,
    LayerNorm,
}

/// A chain of `steps.len()` ops from an input of shape `dims`, as a case
/// whose `op` is `"chain"` and whose `variant` lists the ops and shapes.
pub fn random_chain(dims: &[usize], steps: &[u64], gen: &mut Generator) -> OpCase {
    let mut inputs = vec![away_from_zero(dims, gen)];
    let mut shape = dims.to_vec();
    let mut plan = Vec::new();
    let mut described = vec![format!("x{}", shape_str(&shape))];
    for &seed in steps {
        let mut pick = Picks(seed);
        let numel: usize = shape.iter().product();
        let rank = shape.len();
        let mut families = vec![Family::Unary, Family::Binary, Family::Softmax];
        if rank >= 2 {
            families.extend([Family::Transpose, Family::Permute, Family::Reshape]);
        }
        if shape.iter().any(|&d| d >= 2) {
            families.push(Family::Narrow);
        }
        if rank < 3 && numel * 2 <= MAX_NUMEL {
            families.push(Family::Expand);
        }
        if rank >= 2 || shape[0] >= 2 {
            families.extend([Family::Reduce, Family::Matmul]);
        }
        if shape[rank - 1] >= 2 {
            families.push(Family::LayerNorm);
        }
        let (step, text) = match families[pick.below(families.len())] {
            Family::Unary => {
                let (name, f) = UNARY[pick.below(UNARY.len())];
                (Step::Unary(f), name.to_string())
            }
            Family::Binary => {
                let (name, f) = BINARY[pick.below(BINARY.len())];
                // Broadcast: drop some leading dims, set some others to 1.
                let keep = rank - pick.below(rank);
                let mut operand: Vec<usize> =
                    shape[rank - keep..].iter().map(|&d| if pick.below(3) == 0 { 1 } else { d }).collect();
                let transposed = operand.len() >= 2 && pick.coin();
                if transposed {
                    let l = operand.len();
                    operand.swap(l - 2, l - 1);
                }
                inputs.push(if name == "div" { positive(&operand, gen) } else { away_from_zero(&operand, gen) });
                let t = if transposed { ".t()" } else { "" };
                (Step::Binary { f, input: inputs.len() - 1, transposed }, format!("{name} {}{t}", shape_str(&operand)))
            }
            Family::Transpose => {
                let d0 = pick.below(rank);
                let d1 = (d0 + 1 + pick.below(rank - 1)) % rank;
                shape.swap(d0, d1);
                (Step::Transpose(d0 as isize, d1 as isize), format!("transpose({d0},{d1})"))
            }
            Family::Permute => {
                let mut order: Vec<usize> = (0..rank).collect();
                for i in (1..rank).rev() {
                    order.swap(i, pick.below(i + 1));
                }
                shape = order.iter().map(|&d| shape[d]).collect();
                (Step::Permute(order.clone()), format!("permute{order:?}"))
            }
            Family::Narrow => {
                let wide: Vec<usize> = (0..rank).filter(|&d| shape[d] >= 2).collect();
                let dim = wide[pick.below(wide.len())];
                let len = 1 + pick.below(shape[dim] - 1);
                let start = pick.below(shape[dim] - len + 1);
                shape[dim] = len;
                (Step::Narrow { dim: dim as isize, start, len }, format!("narrow({dim},{start},{len})"))
            }
            Family::Expand => {
                let dim = pick.below(rank + 1);
                let size = if numel * 3 <= MAX_NUMEL { 2 + pick.below(2) } else { 2 };
                shape.insert(dim, size);
                (
                    Step::Expand { dim: dim as isize, to: shape.clone() },
                    format!("unsqueeze({dim}).expand{}", shape_str(&shape)),
                )
            }
            Family::Reshape => {
                // Merge two neighbouring dims (a copy when they are strided).
                let d = pick.below(rank - 1);
                let merged = shape[d] * shape[d + 1];
                shape.splice(d..d + 2, [merged]);
                let target: Vec<isize> = shape.iter().map(|&s| s as isize).collect();
                (Step::Reshape(target), format!("reshape{}", shape_str(&shape)))
            }
            Family::Reduce => {
                let (mut name, mut f) = REDUCE[pick.below(REDUCE.len())];
                // The unbiased variance needs two elements along its dim.
                let mut fits: Vec<usize> = (0..rank).filter(|&d| name != "var" || shape[d] >= 2).collect();
                if fits.is_empty() {
                    (name, f) = REDUCE[0];
                    fits = (0..rank).collect();
                }
                let dim = fits[pick.below(fits.len())];
                // Never down to rank 0 in the middle of a chain.
                let keepdim = rank == 1 || pick.coin();
                if keepdim {
                    shape[dim] = 1;
                } else {
                    shape.remove(dim);
                }
                let k = if keepdim { ", keepdim" } else { "" };
                (Step::Reduce { f, dim: dim as isize, keepdim }, format!("{name}(dim={dim}{k})"))
            }
            Family::Softmax => {
                let dim = pick.below(rank);
                if pick.coin() {
                    (Step::Softmax(Var::softmax, dim as isize), format!("softmax({dim})"))
                } else {
                    (Step::Softmax(Var::log_softmax, dim as isize), format!("log_softmax({dim})"))
                }
            }
            Family::Matmul => {
                let last = shape[rank - 1];
                let cols = 1 + pick.below(3);
                let cols = cols.min((MAX_NUMEL * last / numel.max(1)).max(1));
                inputs.push(away_from_zero(&[last, cols], gen));
                if rank == 1 {
                    shape = vec![cols];
                } else {
                    shape[rank - 1] = cols;
                }
                (Step::Matmul { input: inputs.len() - 1 }, format!("matmul [{last},{cols}]"))
            }
            Family::LayerNorm => (Step::LayerNorm, "layer_norm".to_string()),
        };
        plan.push(step);
        described.push(text);
    }
    let shapes = inputs.iter().map(|t| shape_str(t.dims())).collect::<Vec<_>>().join("x");
    let f = move |v: &[Var]| plan.iter().fold(v[0].clone(), |x, step| step.apply(&x, v));
    OpCase { op: "chain".to_string(), variant: described.join(" -> "), shapes, inputs, f: Box::new(f) }
}
