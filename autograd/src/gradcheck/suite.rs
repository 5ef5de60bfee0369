//! The gradient-check suite: every differentiable op, on inputs of given
//! sizes, including broadcast operands and non-contiguous views.
//!
//! Each [`OpCase`] names the op it checks exactly: `op` is the name the op's
//! backward records ([`crate::BackwardOp::name`], e.g. `"max"`,
//! `"log_softmax"`, `"add_scalar"`), or, for a public op built from others
//! (`mean` is `sum` then `mul_scalar`), the public function's name, listed
//! in [`COMPOSITE_OPS`] with the nodes it records. `variant` says what the
//! case varies ("dim=1, keepdim", "transposed lhs", "expanded rhs (stride 0)").
//!
//! `gradcheck` hands every input to the function as a fresh dense tensor, so
//! a case that wants a non-contiguous operand makes the view inside its
//! function: the input is stored transposed, wider, or with a size-1
//! dimension, and the function applies `.t()`, `.narrow(..)` or `.expand(..)`
//! before the op under test. Every op family has such cases.
//!
//! `scratchgpt gradcheck` runs the suite at fixed sizes; the property tests
//! run it at random sizes. Index tensors, masks and targets are captured by
//! the closures (they are not differentiated); every `Var` input is checked.

use std::cell::RefCell;

use tensor::{AttentionOptions, CmpOp, DType, Generator, Qkv, RopeConfig, RopeScaling, Tensor};

use super::{gradcheck, GradcheckReport};
use crate::loss::{binary_cross_entropy, cross_entropy, mse_loss, IGNORE_INDEX};
use crate::ops::attention::attention;
use crate::ops::dropout::dropout;
use crate::ops::layer_norm::layer_norm;
use crate::ops::linear::linear;
use crate::ops::rms_norm::rms_norm;
use crate::ops::swiglu::swiglu;
use crate::var::Var;

type OpFn = Box<dyn Fn(&[Var]) -> Var>;

/// One op on one set of inputs.
pub struct OpCase {
    /// The exact name of the op under test (see the module doc).
    pub op: String,
    /// What this case varies: dimension, broadcast, layout of the inputs.
    pub variant: String,
    /// The stored inputs' shapes, `[3,4]x[4]`.
    pub shapes: String,
    pub inputs: Vec<Tensor>,
    pub f: OpFn,
}

impl OpCase {
    pub fn check(&self) -> GradcheckReport {
        gradcheck(&self.f, &self.inputs)
    }

    /// The names of the ops the case's function records when run on inputs
    /// that require gradients, to confirm that it exercises the op it names
    /// (empty under `no_grad`, which records nothing).
    pub fn recorded_op_names(&self) -> Vec<&'static str> {
        let vars: Vec<Var> = self.inputs.iter().map(|t| Var::parameter(t.to_dtype(DType::F64))).collect();
        (self.f)(&vars).graph_op_names()
    }
}

/// Public ops that record no node of their own name, with the nodes they do
/// record. Every other case's `op` is a `BackwardOp::name`.
pub const COMPOSITE_OPS: &[(&str, &[&str])] = &[
    ("t", &["transpose"]),
    ("square", &["powf"]),
    ("div_scalar", &["mul_scalar"]),
    ("sub_scalar", &["add_scalar"]),
    ("minimum", &["neg", "maximum"]),
    ("mean", &["sum", "mul_scalar"]),
    ("mean_all", &["sum_all", "mul_scalar"]),
    ("where_cond", &["where"]),
    ("masked_fill", &["where"]),
    ("stack", &["unsqueeze", "cat"]),
    ("mse_loss", &["sub", "powf", "sum_all", "mul_scalar"]),
    ("sum_to_shape", &["sum"]),
    ("reshape_to", &["reshape"]),
];

/// The node names a case for `op` must record: the composite's parts, or
/// the op itself.
pub fn expected_nodes(op: &str) -> Vec<&str> {
    match COMPOSITE_OPS.iter().find(|(name, _)| *name == op) {
        Some((_, parts)) => parts.to_vec(),
        None => vec![op],
    }
}

/// Sizes the cases are built from; every size is at least 1.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes { m: 3, n: 4, k: 5, batch: 2 }
    }
}

pub(crate) fn shape_str(dims: &[usize]) -> String {
    format!("{dims:?}").replace(' ', "")
}

/// Values in ±[0.2, 1.5]: away from the kinks of relu, abs and max at 0.
pub fn away_from_zero(dims: &[usize], gen: &mut Generator) -> Tensor {
    let mag = Tensor::uniform(dims.to_vec(), 0.2, 1.5, DType::F64, gen);
    let sign = Tensor::uniform(dims.to_vec(), -1.0, 1.0, DType::F64, gen).compare_scalar(0.0, CmpOp::Ge);
    let sign = sign.to_dtype(DType::F64).mul_scalar(2.0).add_scalar(-1.0);
    mag.mul(&sign)
}

/// Values in [0.5, 2]: inside the domains of log, sqrt, powf and division.
pub fn positive(dims: &[usize], gen: &mut Generator) -> Tensor {
    Tensor::uniform(dims.to_vec(), 0.5, 2.0, DType::F64, gen)
}

/// Collects the cases.
struct Cases(Vec<OpCase>);

impl Cases {
    fn add(&mut self, op: &str, variant: &str, inputs: Vec<Tensor>, f: impl Fn(&[Var]) -> Var + 'static) {
        let shapes = inputs.iter().map(|t| shape_str(t.dims())).collect::<Vec<_>>().join("x");
        self.0.push(OpCase { op: op.to_string(), variant: variant.to_string(), shapes, inputs, f: Box::new(f) });
    }
}

type Unary = fn(&Var) -> Var;
type Binary = fn(&Var, &Var) -> Var;

/// Every op's cases at the given sizes, inputs drawn from `gen`.
pub fn cases(s: Sizes, gen: &mut Generator) -> Vec<OpCase> {
    let Sizes { m, n, k, batch: b } = s;
    let gen = RefCell::new(gen);
    let r = |dims: &[usize]| away_from_zero(dims, &mut gen.borrow_mut());
    let p = |dims: &[usize]| positive(dims, &mut gen.borrow_mut());
    let mut c = Cases(Vec::new());

    // Elementwise functions of one input: dense, transposed, narrowed out of
    // a wider tensor, and a column expanded across the row (stride 0).
    let unary: [(&str, Unary, bool); 15] = [
        ("neg", Var::neg, false),
        ("abs", Var::abs, false),
        ("exp", Var::exp, false),
        ("tanh", Var::tanh, false),
        ("sigmoid", Var::sigmoid, false),
        ("relu", Var::relu, false),
        ("gelu", Var::gelu, false),
        ("mul_scalar", |v| v.mul_scalar(-2.5), false),
        ("add_scalar", |v| v.add_scalar(0.75), false),
        ("div_scalar", |v| v.div_scalar(4.0), false),
        ("sub_scalar", |v| v.sub_scalar(0.5), false),
        ("square", Var::square, false),
        ("log", Var::log, true),
        ("sqrt", Var::sqrt, true),
        ("powf", |v| v.powf(2.5), true),
    ];
    for (op, f, needs_positive) in unary {
        let draw = |dims: &[usize]| if needs_positive { p(dims) } else { r(dims) };
        c.add(op, "", vec![draw(&[m, n])], move |v| f(&v[0]));
        c.add(op, "transposed input", vec![draw(&[n, m])], move |v| f(&v[0].t()));
        c.add(op, "narrowed input", vec![draw(&[m, n + 2])], move |v| f(&v[0].narrow(1, 1, n)));
        c.add(op, "expanded input (stride 0)", vec![draw(&[m, 1])], move |v| f(&v[0].expand([m, n])));
    }

    // Broadcast binary ops: same shape, a row vector, a column against a row,
    // and non-contiguous operands (transposed, expanded, narrowed).
    let (a, at) = (r(&[m, n]), r(&[n, m]));
    let (row, col, row1, wide) = (r(&[n]), r(&[m, 1]), r(&[1, n]), r(&[m, n + 2]));
    let binary: [(&str, Binary); 6] = [
        ("add", Var::add),
        ("sub", Var::sub),
        ("mul", Var::mul),
        ("div", Var::div),
        ("maximum", Var::maximum),
        ("minimum", Var::minimum),
    ];
    for (op, f) in binary {
        // The right operand of a division stays positive.
        let rhs = |dims: &[usize]| if op == "div" { p(dims) } else { r(dims) };
        c.add(op, "same shape", vec![a.clone(), rhs(&[m, n])], move |v| f(&v[0], &v[1]));
        c.add(op, "broadcast row", vec![a.clone(), rhs(&[n])], move |v| f(&v[0], &v[1]));
        c.add(op, "column x row", vec![col.clone(), rhs(&[1, n])], move |v| f(&v[0], &v[1]));
        c.add(op, "transposed lhs", vec![at.clone(), rhs(&[m, n])], move |v| f(&v[0].t(), &v[1]));
        c.add(op, "expanded rhs (stride 0)", vec![a.clone(), rhs(&[m, 1])], move |v| f(&v[0], &v[1].expand([m, n])));
        c.add(op, "narrowed rhs", vec![a.clone(), rhs(&[m, n + 2])], move |v| f(&v[0], &v[1].narrow(1, 1, n)));
    }

    // Choosing between operands (the masks are constants).
    let mask = r(&[m, n]).compare_scalar(0.0, CmpOp::Gt);
    let (mask1, mask2) = (mask.clone(), mask.clone());
    c.add("where", "broadcast row", vec![a.clone(), row.clone()], move |v| Var::where_cond(&mask, &v[0], &v[1]));
    c.add("where", "transposed and expanded operands", vec![at.clone(), col.clone()], move |v| {
        Var::where_cond(&mask1, &v[0].t(), &v[1].expand([m, n]))
    });
    c.add("where_cond", "narrowed operand", vec![wide.clone(), row1.clone()], move |v| {
        Var::where_cond(&mask2, &v[0].narrow(1, 1, n), &v[1])
    });
    let causal = Tensor::ones([m, n], DType::F64).triu(1);
    let causal2 = causal.clone();
    c.add("masked_fill", "causal mask", vec![a.clone()], move |v| v[0].masked_fill(&causal, -3.0).exp());
    c.add("masked_fill", "transposed input", vec![at.clone()], move |v| v[0].t().masked_fill(&causal2, 0.5));

    // Reductions over [B, M, N]: each dim, keepdim, and a permuted, a
    // narrowed and an expanded input.
    let x3 = r(&[b, m, n]);
    let permuted = r(&[n, b, m]); // .permute([1, 2, 0]) is [B, M, N]
    let wide3 = r(&[b, m, n + 2]);
    type Reduce = fn(&Var, isize, bool) -> Var;
    let reductions: [(&str, Reduce); 3] = [("sum", Var::sum), ("mean", Var::mean), ("max", Var::max)];
    for (op, f) in reductions {
        for dim in [0isize, 1, -1] {
            c.add(op, &format!("dim={dim}"), vec![x3.clone()], move |v| f(&v[0], dim, false));
        }
        c.add(op, "dim=1, keepdim", vec![x3.clone()], move |v| f(&v[0], 1, true));
        c.add(op, "permuted input, dim=1", vec![permuted.clone()], move |v| f(&v[0].permute(&[1, 2, 0]), 1, false));
        c.add(op, "narrowed input, dim=-1", vec![wide3.clone()], move |v| f(&v[0].narrow(2, 1, n), -1, false));
        // Expanded along N, reduced along M: no ties for max.
        c.add(op, "expanded input (stride 0), dim=1", vec![r(&[b, m, 1])], move |v| {
            f(&v[0].expand([b, m, n]), 1, false)
        });
    }
    c.add("sum", "expanded input, reduced along the repeats", vec![r(&[b, 1, n])], move |v| {
        v[0].expand([b, m, n]).sum(1, false)
    });
    c.add("sum_all", "", vec![x3.clone()], |v| v[0].sum_all());
    c.add("sum_all", "permuted input", vec![permuted.clone()], |v| v[0].permute(&[1, 2, 0]).tanh().sum_all());
    c.add("sum_all", "expanded input (stride 0)", vec![col.clone()], move |v| v[0].expand([m, n]).sum_all());
    c.add("mean_all", "", vec![x3.clone()], |v| v[0].mean_all());
    // What a broadcast operand's gradient does: sum back down to its shape.
    let column_shape = tensor::Shape::from([m, 1]);
    c.add("sum_to_shape", "[B,M,N] to [M,1]", vec![x3.clone()], move |v| v[0].sum_to_shape(&column_shape).tanh());
    c.add("mean_all", "narrowed input", vec![wide3.clone()], move |v| v[0].narrow(2, 1, n).mean_all());
    // Variance needs two elements along its dim (one gives NaN, unbiased).
    let n2 = n.max(2);
    c.add("var", "dim=-1, unbiased", vec![r(&[m, n2])], |v| v[0].var(-1, false, true));
    c.add("var", "dim=1, biased, keepdim", vec![r(&[m, n2])], |v| v[0].var(1, true, false));
    c.add("var", "dim=0, unbiased", vec![r(&[n2, m])], |v| v[0].var(0, false, true));
    c.add("var", "transposed input, dim=-1", vec![r(&[n2, m])], |v| v[0].t().var(-1, false, true));
    c.add("var", "narrowed input, dim=-1", vec![r(&[m, n2 + 2])], move |v| v[0].narrow(1, 1, n2).var(-1, false, true));
    c.add("var", "expanded input (stride 0), dim=0", vec![r(&[1, n2])], move |v| {
        // Each column's rows would be equal: the variance runs across the
        // columns instead, through the expanded view.
        v[0].expand([m, n2]).t().var(-1, false, false)
    });

    // Softmax family: several dims, a transposed input (the softmax runs
    // along a strided dim), a narrowed one and an expanded one.
    let transposed3 = r(&[b, n, m]); // .transpose(1, 2) is [B, M, N]
    for (op, f) in [("softmax", Var::softmax as fn(&Var, isize) -> Var), ("log_softmax", Var::log_softmax)] {
        for dim in [-1isize, 1, 0] {
            c.add(op, &format!("dim={dim}"), vec![x3.clone()], move |v| f(&v[0], dim));
        }
        c.add(op, "transposed input, dim=-1", vec![transposed3.clone()], move |v| f(&v[0].transpose(1, 2), -1));
        c.add(op, "narrowed input, dim=-1", vec![wide3.clone()], move |v| f(&v[0].narrow(2, 1, n), -1));
        c.add(op, "expanded input (stride 0), dim=-1", vec![r(&[b, 1, n])], move |v| f(&v[0].expand([b, m, n]), -1));
    }

    // Layer norm over the last dim.
    let (gamma, beta) = (r(&[n]), r(&[n]));
    c.add("layer_norm", "affine", vec![x3.clone(), gamma.clone(), beta.clone()], |v| {
        layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5)
    });
    c.add("layer_norm", "no affine", vec![x3.clone()], |v| layer_norm(&v[0], None, 1e-5));
    c.add("layer_norm", "transposed input", vec![transposed3.clone(), gamma.clone(), beta.clone()], |v| {
        layer_norm(&v[0].transpose(1, 2), Some((&v[1], &v[2])), 1e-5)
    });
    c.add("layer_norm", "narrowed input and gamma", vec![wide3.clone(), r(&[n + 2]), beta.clone()], move |v| {
        layer_norm(&v[0].narrow(2, 1, n), Some((&v[1].narrow(0, 1, n), &v[2])), 1e-5)
    });
    c.add("layer_norm", "expanded input (stride 0)", vec![r(&[b, 1, n]), gamma.clone(), beta.clone()], move |v| {
        layer_norm(&v[0].expand([b, m, n]), Some((&v[1], &v[2])), 1e-5)
    });
    // Every row constant: the variance is 0, the output is beta, and the
    // gradient is finite (eps keeps 1/sqrt(var + eps) bounded).
    c.add("layer_norm", "constant rows", vec![Tensor::full([m, n], 0.7, DType::F64), gamma.clone(), beta], |v| {
        layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5)
    });

    // The Llama block's ops: RMSNorm, rotary embedding, SiLU and SwiGLU.
    llama_cases(&mut c, s, &r);

    // Matmul in every arrangement torch.matmul accepts, and strided operands.
    let (amk, bkn) = (r(&[m, k]), r(&[k, n]));
    let mm = |v: &[Var]| v[0].matmul(&v[1]);
    c.add("matmul", "matrix x matrix", vec![amk.clone(), bkn.clone()], mm);
    c.add("matmul", "transposed operands", vec![r(&[k, m]), r(&[n, k])], |v| v[0].t().matmul(&v[1].t()));
    c.add("matmul", "narrowed lhs", vec![r(&[m, k + 2]), bkn.clone()], move |v| v[0].narrow(1, 1, k).matmul(&v[1]));
    c.add("matmul", "vector x matrix", vec![r(&[k]), bkn.clone()], mm);
    c.add("matmul", "matrix x vector", vec![amk.clone(), r(&[k])], mm);
    c.add("matmul", "vector x vector", vec![r(&[k]), r(&[k])], mm);
    c.add("matmul", "batched", vec![r(&[b, m, k]), r(&[b, k, n])], mm);
    c.add("matmul", "batched, transposed lhs", vec![r(&[b, k, m]), r(&[b, k, n])], |v| {
        v[0].transpose(1, 2).matmul(&v[1])
    });
    c.add("matmul", "broadcast batch", vec![r(&[b, 1, m, k]), r(&[2, k, n])], mm);
    c.add("matmul", "batched x matrix", vec![r(&[b, m, k]), bkn.clone()], mm);
    c.add("matmul", "expanded batch rhs (stride 0)", vec![r(&[b, m, k]), bkn.clone()], move |v| {
        v[0].matmul(&v[1].unsqueeze(0).expand([b, k, n]))
    });
    let (w, bias) = (r(&[n, k]), r(&[n]));
    c.add("linear", "with bias", vec![r(&[b, m, k]), w.clone(), bias.clone()], |v| linear(&v[0], &v[1], Some(&v[2])));
    c.add("linear", "no bias", vec![amk.clone(), w.clone()], |v| linear(&v[0], &v[1], None));
    c.add("linear", "transposed input", vec![r(&[k, m]), w.clone(), bias.clone()], |v| {
        linear(&v[0].t(), &v[1], Some(&v[2]))
    });
    c.add("linear", "weight stored transposed", vec![amk.clone(), r(&[k, n])], |v| linear(&v[0], &v[1].t(), None));
    c.add("linear", "narrowed weight, expanded bias", vec![amk.clone(), r(&[n, k + 2]), r(&[1])], move |v| {
        linear(&v[0], &v[1].narrow(1, 1, k), Some(&v[2].expand([n])))
    });

    // Views and joins.
    c.add("reshape", "", vec![x3.clone()], move |v| v[0].reshape(&[-1, n as isize]).tanh());
    let flat_shape = tensor::Shape::from([b * m * n]);
    c.add("reshape_to", "flat", vec![x3.clone()], move |v| v[0].reshape_to(&flat_shape).exp());
    c.add("reshape", "of a transposed view", vec![transposed3.clone()], |v| v[0].transpose(1, 2).reshape(&[-1]).exp());
    c.add("transpose", "", vec![x3.clone()], |v| v[0].transpose(0, 2).exp());
    c.add("t", "", vec![at.clone()], |v| v[0].t().exp());
    c.add("permute", "", vec![x3.clone()], |v| v[0].permute(&[2, 0, 1]).sigmoid());
    c.add("narrow", "", vec![x3.clone()], move |v| v[0].narrow(2, n / 2, n - n / 2).exp());
    c.add("narrow", "of a transposed view", vec![at.clone()], move |v| v[0].t().narrow(0, m / 2, m - m / 2).exp());
    c.add("expand", "", vec![col.clone()], move |v| v[0].expand([m, n]).tanh());
    c.add("expand", "of a transposed view", vec![col.clone()], move |v| v[0].t().expand([n, m]).tanh());
    c.add("squeeze", "", vec![col.clone()], |v| v[0].squeeze(1).exp());
    c.add("unsqueeze", "of a transposed view", vec![at.clone()], |v| v[0].t().unsqueeze(1).exp());
    c.add("contiguous", "of a transposed view", vec![at.clone()], |v| v[0].t().contiguous().exp());
    c.add("cat", "dim=1", vec![a.clone(), r(&[m, k])], |v| Var::cat(&[v[0].clone(), v[1].clone()], 1).tanh());
    c.add("cat", "transposed and narrowed inputs, dim=0", vec![at.clone(), wide.clone()], move |v| {
        Var::cat(&[v[0].t(), v[1].narrow(1, 1, n)], 0).tanh()
    });
    c.add("cat", "expanded input (stride 0)", vec![a.clone(), row1.clone()], move |v| {
        Var::cat(&[v[0].clone(), v[1].expand([2, n])], 0).tanh()
    });
    let pair = |v: &[Var], dim: isize| Var::stack(&[v[0].clone(), v[1].clone()], dim).tanh();
    c.add("stack", "dim=1", vec![a.clone(), r(&[m, n])], move |v| pair(v, 1));
    c.add("stack", "transposed inputs, dim=0", vec![at.clone(), r(&[n, m])], |v| {
        Var::stack(&[v[0].t(), v[1].t()], 0).tanh()
    });
    c.add("stack", "expanded input (stride 0), dim=-1", vec![a.clone(), col.clone()], move |v| {
        Var::stack(&[v[0].clone(), v[1].expand([m, n])], -1).tanh()
    });

    // Indexing (the index tensors are constants).
    let rows = Tensor::from_vec((0..m + 2).map(|i| ((i * 7) % m) as i64).collect::<Vec<_>>(), [m + 2]).unwrap();
    let cols = Tensor::from_vec(vec![(n - 1) as i64, 0, (n - 1) as i64], [3]).unwrap();
    let (rows2, cols2, cols3) = (rows.clone(), cols.clone(), cols.clone());
    c.add("index_select", "dim=0, repeats", vec![a.clone()], move |v| v[0].index_select(0, &rows).tanh());
    c.add("index_select", "dim=1", vec![a.clone()], move |v| v[0].index_select(1, &cols).exp());
    c.add("index_select", "transposed input, dim=0", vec![at.clone()], move |v| {
        v[0].t().index_select(0, &rows2).tanh()
    });
    c.add("index_select", "narrowed input, dim=1", vec![wide.clone()], move |v| {
        v[0].narrow(1, 1, n).index_select(1, &cols2).exp()
    });
    let ids = Tensor::from_vec((0..b * 3).map(|i| ((i * 5) % m) as i64).collect::<Vec<_>>(), [b, 3]).unwrap();
    let lookup = move |table: Var| table.embedding(&ids).tanh();
    let (l1, l2, l3) = (lookup.clone(), lookup.clone(), lookup.clone());
    c.add("embedding", "", vec![a.clone()], move |v| l1(v[0].clone()));
    c.add("embedding", "transposed table", vec![at.clone()], move |v| l2(v[0].t()));
    c.add("embedding", "narrowed table", vec![wide.clone()], move |v| l3(v[0].narrow(1, 1, n)));
    // GPT-2's tie: one table embeds the ids and is the output layer's weight,
    // so the lookup's gradient is scattered into the head's (`backward_into`).
    c.add("embedding", "tied to linear", vec![a.clone()], move |v| linear(&lookup(v[0].clone()), &v[0], None));
    // index_add, the adjoint of index_select: both the base and the added
    // slices are differentiated; repeated indices accumulate.
    let into = Tensor::from_vec((0..m + 2).map(|i| ((i * 5) % m) as i64).collect::<Vec<_>>(), [m + 2]).unwrap();
    let into2 = into.clone();
    c.add("index_add", "dim=0, repeats", vec![a.clone(), r(&[m + 2, n])], move |v| {
        v[0].index_add(0, &into, &v[1]).tanh()
    });
    c.add("index_add", "dim=1, transposed source", vec![a.clone(), r(&[3, m])], move |v| {
        v[0].index_add(1, &cols3, &v[1].t()).exp()
    });
    // A routed MLP's dispatch and combine: rows gathered for an expert,
    // transformed, scaled by a per-row weight, added back into their rows.
    c.add("index_add", "dispatch, weight, combine", vec![a.clone(), r(&[n, n]), r(&[m + 2, 1])], move |v| {
        let picked = v[0].index_select(0, &into2).matmul(&v[1]).tanh();
        Var::constant(Tensor::zeros([m, n], DType::F64)).index_add(0, &into2, &picked.mul(&v[2])).exp()
    });
    let gidx = Tensor::from_vec((0..m * 2).map(|i| ((i * 3) % n) as i64).collect::<Vec<_>>(), [m, 2]).unwrap();
    let gidx0 = Tensor::from_vec((0..2 * n).map(|i| ((i * 5) % m) as i64).collect::<Vec<_>>(), [2, n]).unwrap();
    let gidx2 = gidx.clone();
    c.add("gather", "dim=1", vec![a.clone()], move |v| v[0].gather(1, &gidx).exp());
    c.add("gather", "dim=0, repeats", vec![a.clone()], move |v| v[0].gather(0, &gidx0).exp());
    c.add("gather", "transposed input, dim=1", vec![at.clone()], move |v| v[0].t().gather(1, &gidx2).exp());

    // Causal attention on [B, H, T, D] queries, keys and values.
    let t = m + 1;
    let heads = [b, 2, t, k];
    let two_heads = AttentionOptions::new(2);
    c.add("attention", "heads first", vec![r(&heads), r(&heads), r(&heads)], move |v| {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &two_heads)
    });
    // q, k, v as [B, H, T, D] views of [B, T, H, D] tensors (strided heads).
    let tokens_first = [b, t, 2, k];
    c.add(
        "attention",
        "q/k/v transposed from [B,T,H,D]",
        vec![r(&tokens_first), r(&tokens_first), r(&tokens_first)],
        move |v| {
            let (q, kk, vv) = (v[0].transpose(1, 2), v[1].transpose(1, 2), v[2].transpose(1, 2));
            attention(Qkv::Heads { q: &q, k: &kk, v: &vv }, &two_heads)
        },
    );
    // The same from a packed [B, T, 3·H·D] projection, heads read in place.
    c.add("attention", "packed qkv", vec![r(&[b, t, 3 * 2 * k])], move |v| attention(Qkv::Packed(&v[0]), &two_heads));
    c.add("attention", "packed qkv narrowed from a wider tensor", vec![r(&[b, t, 3 * 2 * k + 2])], move |v| {
        attention(Qkv::Packed(&v[0].narrow(2, 1, 3 * 2 * k)), &two_heads)
    });

    // Grouped key/value heads (GQA; MQA with one) and sliding windows.
    let gqa = AttentionOptions::new(4).with_kv_heads(2);
    let mqa = AttentionOptions::new(4).with_kv_heads(1);
    let (windowed, gqa_windowed) = (two_heads.with_window(2), gqa.with_window(2));
    let (q4, kv2, kv1) = ([b, 4, t, k], [b, 2, t, k], [b, 1, t, k]);
    c.add("attention", "GQA: 4 query heads over 2 key/value heads", vec![r(&q4), r(&kv2), r(&kv2)], move |v| {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &gqa)
    });
    c.add("attention", "MQA: 4 query heads over 1 key/value head", vec![r(&q4), r(&kv1), r(&kv1)], move |v| {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &mqa)
    });
    c.add("attention", "sliding window 2 < T", vec![r(&heads), r(&heads), r(&heads)], move |v| {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &windowed)
    });
    // Soft-capped scores (Gemma 2): a cap of 0.5 squashes scores of order 1,
    // so the backward's 1 − tanh² factor is far from 1.
    let capped = gqa.with_window(2).with_softcap(0.5);
    c.add("attention", "soft-capped scores (cap 0.5), GQA, window 2", vec![r(&q4), r(&kv2), r(&kv2)], move |v| {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &capped)
    });
    let capped_packed = two_heads.with_softcap(0.5);
    c.add("attention", "soft-capped scores (cap 0.5), packed qkv", vec![r(&[b, t, 3 * 2 * k])], move |v| {
        attention(Qkv::Packed(&v[0]), &capped_packed)
    });
    c.add(
        "attention",
        "GQA, window 2, k/v transposed from [B,T,Hkv,D]",
        vec![r(&q4), r(&[b, t, 2, k]), r(&[b, t, 2, k])],
        move |v| {
            let (kk, vv) = (v[1].transpose(1, 2), v[2].transpose(1, 2));
            attention(Qkv::Heads { q: &v[0], k: &kk, v: &vv }, &gqa_windowed)
        },
    );
    // Packed [B, T, (H + 2·Hkv)·D]: Q, then K, then V.
    c.add("attention", "packed GQA, window 2, narrowed from a wider tensor", vec![r(&[b, t, 8 * k + 2])], move |v| {
        attention(Qkv::Packed(&v[0].narrow(2, 1, 8 * k)), &gqa_windowed)
    });
    c.add("attention", "packed MQA", vec![r(&[b, t, 6 * k])], move |v| attention(Qkv::Packed(&v[0]), &mqa));
    // A KV cache's shape: the last 2 positions' queries against t + 1 keys.
    let (q_new, kv_long) = ([b, 4, 2, k], [b, 2, t + 1, k]);
    c.add(
        "attention",
        "GQA, window 2, 2 queries after t + 1 keys (KV cache)",
        vec![r(&q_new), r(&kv_long), r(&kv_long)],
        move |v| attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &gqa_windowed),
    );

    // Dropout (its mask depends only on the seed, so every evaluation of the
    // function drops the same elements).
    c.add("dropout", "p=0.3", vec![x3.clone()], |v| dropout(&v[0], 0.3, true, &mut Generator::seed(3)));
    c.add("dropout", "p=0.3, transposed input", vec![at.clone()], |v| {
        dropout(&v[0].t(), 0.3, true, &mut Generator::seed(3))
    });

    // Losses (targets are constants).
    let classes = n.max(2);
    let rows_n = b * m;
    let targets: Vec<i64> =
        (0..rows_n).map(|i| if i == 1 { IGNORE_INDEX } else { ((i * 3) % classes) as i64 }).collect();
    let targets = Tensor::from_vec(targets, [rows_n]).unwrap();
    let targets_bt = targets.reshape(&[b as isize, m as isize]);
    let (t1, t2, t3, t4) = (targets.clone(), targets.clone(), targets_bt.clone(), targets_bt);
    c.add("cross_entropy", "ignore_index", vec![r(&[rows_n, classes])], move |v| cross_entropy(&v[0], &targets));
    c.add("cross_entropy", "[B,T,C]", vec![r(&[b, m, classes])], move |v| cross_entropy(&v[0], &t3));
    c.add("cross_entropy", "transposed logits", vec![r(&[classes, rows_n])], move |v| cross_entropy(&v[0].t(), &t1));
    c.add("cross_entropy", "narrowed logits", vec![r(&[rows_n, classes + 2])], move |v| {
        cross_entropy(&v[0].narrow(1, 1, classes), &t2)
    });
    c.add("cross_entropy", "[B,T,C] from [B,C,T]", vec![r(&[b, classes, m])], move |v| {
        cross_entropy(&v[0].transpose(1, 2), &t4)
    });
    let probs = Tensor::uniform([m, n], 0.1, 0.9, DType::F64, &mut gen.borrow_mut());
    let probs_t = Tensor::uniform([n, m], 0.1, 0.9, DType::F64, &mut gen.borrow_mut());
    let labels = Var::constant(r(&[m, n]).compare_scalar(0.0, CmpOp::Ge).to_dtype(DType::F64));
    let labels2 = labels.clone();
    c.add("binary_cross_entropy", "", vec![probs], move |v| binary_cross_entropy(&v[0], &labels));
    c.add("binary_cross_entropy", "transposed prediction", vec![probs_t], move |v| {
        binary_cross_entropy(&v[0].t(), &labels2)
    });
    c.add("mse_loss", "", vec![a.clone(), r(&[m, n])], |v| mse_loss(&v[0], &v[1]));
    c.add("mse_loss", "transposed prediction, broadcast target", vec![at.clone(), row.clone()], |v| {
        mse_loss(&v[0].t(), &v[1])
    });

    c.0
}

/// RMSNorm (with and without a weight, per head, on strided inputs), rotary
/// embedding (each scaling type, a KV-cache offset, [B,T,H,D] views of a
/// heads-first tensor and of a wider projection), SiLU and SwiGLU.
fn llama_cases(c: &mut Cases, s: Sizes, r: &dyn Fn(&[usize]) -> Tensor) {
    let Sizes { m, n, batch: b, .. } = s;
    let (x3, w) = (r(&[b, m, n]), r(&[n]));
    c.add("rms_norm", "weight", vec![x3.clone(), w.clone()], |v| rms_norm(&v[0], Some(&v[1]), 1e-6));
    c.add("rms_norm", "no weight", vec![x3.clone()], |v| rms_norm(&v[0], None, 1e-6));
    c.add("rms_norm", "transposed input", vec![r(&[b, n, m]), w.clone()], |v| {
        rms_norm(&v[0].transpose(1, 2), Some(&v[1]), 1e-6)
    });
    c.add("rms_norm", "narrowed input and weight", vec![r(&[b, m, n + 2]), r(&[n + 2])], move |v| {
        rms_norm(&v[0].narrow(2, 1, n), Some(&v[1].narrow(0, 1, n)), 1e-6)
    });
    c.add("rms_norm", "expanded input (stride 0)", vec![r(&[b, 1, n]), w.clone()], move |v| {
        rms_norm(&v[0].expand([b, m, n]), Some(&v[1]), 1e-6)
    });
    // Qwen3's q/k norm: each head of [B, T, H, D] normalised on its own.
    c.add("rms_norm", "per head of [B,T,H,D]", vec![r(&[b, m, 2, n]), w], |v| rms_norm(&v[0], Some(&v[1]), 1e-6));

    // Rotary embedding on [B, T, H, D], D even and above 2 (dynamic scaling
    // needs D > 2), positions offset .. offset + T.
    let (t, h, d) = (m, 2, 2 * (n + 1));
    let scaled = |scaling| RopeConfig { theta: 10000.0, head_dim: d, scaling };
    let configs = [
        ("default", RopeConfig::new(10000.0, d), 0),
        ("default, offset 3", RopeConfig::new(10000.0, d), 3),
        ("linear, offset 2", scaled(RopeScaling::Linear { factor: 4.0 }), 2),
        // offset + T beyond original_max: the rescaled base is in use.
        ("dynamic past original_max", scaled(RopeScaling::Dynamic { factor: 2.0, original_max: 2 }), 3),
        (
            "llama3, offset 5",
            scaled(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 8.0,
                original_max: 1000,
            }),
            5,
        ),
    ];
    for (variant, config, offset) in configs {
        let tables = config.tables(offset, t);
        c.add("rope", variant, vec![r(&[b, t, h, d])], move |v| v[0].rope(&tables));
    }
    let tables = RopeConfig::new(10000.0, d).tables(1, t);
    let tables2 = tables.clone();
    c.add("rope", "[B,T,H,D] view of [B,H,T,D] (transposed)", vec![r(&[b, h, t, d])], move |v| {
        v[0].transpose(1, 2).rope(&tables)
    });
    // q as heads of a [B, T, 3·H·D] fused projection: narrowed, then viewed.
    c.add("rope", "heads narrowed out of a wider projection", vec![r(&[b, t, 3 * h * d])], move |v| {
        v[0].narrow(2, h * d, h * d).reshape(&[b as isize, t as isize, h as isize, d as isize]).rope(&tables2)
    });
    // Partial rotary (Phi-3): tables for the first half of each head, the
    // rest passed through; and longrope's per-pair factors past its
    // original length, with cos and sin scaled by its attention factor.
    let pairs = (d / 4).max(1); // the turning part: 2 · pairs ≤ D/2
    let partial = RopeConfig::new(10000.0, 2 * pairs).tables(2, t);
    c.add("rope", "partial: the first part of each head turns", vec![r(&[b, t, h, d])], move |v| v[0].rope(&partial));
    let long_rope = RopeConfig {
        theta: 10000.0,
        head_dim: 2 * pairs,
        scaling: RopeScaling::LongRope {
            short_factor: vec![1.0; pairs],
            long_factor: (0..pairs).map(|i| 1.0 + i as f64).collect(),
            original_max: 2,
            attention_factor: 1.3,
        },
    };
    let long_tables = long_rope.tables(1, t);
    c.add("rope", "partial, longrope past original_max", vec![r(&[b, t, h, d])], move |v| v[0].rope(&long_tables));

    c.add("silu", "", vec![r(&[m, n])], |v| v[0].silu());
    c.add("silu", "transposed input", vec![r(&[n, m])], |v| v[0].t().silu());
    c.add("silu", "narrowed input", vec![r(&[m, n + 2])], move |v| v[0].narrow(1, 1, n).silu());
    c.add("silu", "expanded input (stride 0)", vec![r(&[m, 1])], move |v| v[0].expand([m, n]).silu());
    c.add("swiglu", "same shape", vec![r(&[b, m, n]), r(&[b, m, n])], |v| swiglu(&v[0], &v[1]));
    c.add("swiglu", "transposed gate, narrowed up", vec![r(&[n, m]), r(&[m, n + 2])], move |v| {
        swiglu(&v[0].t(), &v[1].narrow(1, 1, n))
    });
    c.add("swiglu", "expanded up (stride 0)", vec![r(&[m, n]), r(&[m, 1])], move |v| {
        swiglu(&v[0], &v[1].expand([m, n]))
    });
}
