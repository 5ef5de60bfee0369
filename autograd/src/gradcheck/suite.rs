//! The gradient-check suite: every differentiable op, on inputs of given
//! sizes, including broadcast operands and non-contiguous views.
//!
//! `scratchgpt gradcheck` runs it at fixed sizes; the property tests run it
//! at random sizes. Index tensors, masks and targets are captured by the
//! closures (they are not differentiated); every `Var` input is checked.

use tensor::{AttentionOptions, DType, Generator, Qkv, Tensor};

use super::{gradcheck, GradcheckReport};
use crate::loss::{binary_cross_entropy, cross_entropy, mse_loss, IGNORE_INDEX};
use crate::ops::attention::attention;
use crate::ops::dropout::dropout;
use crate::ops::layer_norm::layer_norm;
use crate::ops::linear::linear;
use crate::var::Var;

type OpFn = Box<dyn Fn(&[Var]) -> Var>;

/// One op on one set of inputs.
pub struct OpCase {
    pub op: String,
    pub shapes: String,
    pub inputs: Vec<Tensor>,
    pub f: OpFn,
}

impl OpCase {
    pub fn check(&self) -> GradcheckReport {
        gradcheck(&self.f, &self.inputs)
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

fn shape_str(dims: &[usize]) -> String {
    format!("{dims:?}").replace(' ', "")
}

/// Values in ±[0.2, 1.5]: away from the kinks of relu, abs and max at 0.
fn away_from_zero(dims: &[usize], gen: &mut Generator) -> Tensor {
    let mag = Tensor::uniform(dims.to_vec(), 0.2, 1.5, DType::F64, gen);
    let sign = Tensor::uniform(dims.to_vec(), -1.0, 1.0, DType::F64, gen).compare_scalar(0.0, tensor::CmpOp::Ge);
    let sign = sign.to_dtype(DType::F64).mul_scalar(2.0).add_scalar(-1.0);
    mag.mul(&sign)
}

fn positive(dims: &[usize], gen: &mut Generator) -> Tensor {
    Tensor::uniform(dims.to_vec(), 0.5, 2.0, DType::F64, gen)
}

fn add(cases: &mut Vec<OpCase>, op: &str, inputs: Vec<Tensor>, f: impl Fn(&[Var]) -> Var + 'static) {
    let shapes = inputs.iter().map(|t| shape_str(t.dims())).collect::<Vec<_>>().join("x");
    cases.push(OpCase { op: op.to_string(), shapes, inputs, f: Box::new(f) });
}

/// Every op's cases at the given sizes, inputs drawn from `gen`.
pub fn cases(s: Sizes, gen: &mut Generator) -> Vec<OpCase> {
    let Sizes { m, n, k, batch: b } = s;
    let gen = std::cell::RefCell::new(gen);
    let r = |dims: &[usize]| away_from_zero(dims, &mut gen.borrow_mut());
    let p = |dims: &[usize]| positive(dims, &mut gen.borrow_mut());
    let mut cases = Vec::new();
    let c = &mut cases;

    // Elementwise functions of one input.
    let x = r(&[m, n]);
    add(c, "neg", vec![x.clone()], |v| v[0].neg());
    add(c, "abs", vec![x.clone()], |v| v[0].abs());
    add(c, "exp", vec![x.clone()], |v| v[0].exp());
    add(c, "tanh", vec![x.clone()], |v| v[0].tanh());
    add(c, "sigmoid", vec![x.clone()], |v| v[0].sigmoid());
    add(c, "relu", vec![x.clone()], |v| v[0].relu());
    add(c, "gelu", vec![x.clone()], |v| v[0].gelu());
    add(c, "mul_scalar", vec![x.clone()], |v| v[0].mul_scalar(-2.5));
    add(c, "add_scalar", vec![x.clone()], |v| v[0].add_scalar(0.75));
    let pos = p(&[m, n]);
    add(c, "log", vec![pos.clone()], |v| v[0].log());
    add(c, "sqrt", vec![pos.clone()], |v| v[0].sqrt());
    add(c, "powf", vec![pos.clone()], |v| v[0].powf(2.5));
    // A transposed (non-contiguous) input.
    add(c, "tanh (transposed input)", vec![r(&[n, m])], |v| v[0].t().tanh());

    // Broadcast binary ops: same shape, a row vector, a column against a row,
    // a non-contiguous operand.
    let (a, bb) = (r(&[m, n]), r(&[m, n]));
    let (row, col, row1) = (r(&[n]), r(&[m, 1]), r(&[1, n]));
    let at = r(&[n, m]);
    let denom = p(&[m, n]);
    let denom_row = p(&[n]);
    type Bin = fn(&Var, &Var) -> Var;
    let ops: [(&str, Bin); 5] =
        [("add", Var::add), ("sub", Var::sub), ("mul", Var::mul), ("maximum", Var::maximum), ("minimum", Var::minimum)];
    for (name, f) in ops {
        add(c, name, vec![a.clone(), bb.clone()], move |v| f(&v[0], &v[1]));
        add(c, name, vec![a.clone(), row.clone()], move |v| f(&v[0], &v[1]));
        add(c, name, vec![col.clone(), row1.clone()], move |v| f(&v[0], &v[1]));
        add(c, &format!("{name} (transposed lhs)"), vec![at.clone(), bb.clone()], move |v| f(&v[0].t(), &v[1]));
    }
    add(c, "div", vec![a.clone(), denom.clone()], |v| v[0].div(&v[1]));
    add(c, "div", vec![a.clone(), denom_row.clone()], |v| v[0].div(&v[1]));
    add(c, "div", vec![col.clone(), denom.clone()], |v| v[0].div(&v[1]));

    // Reductions.
    let x3 = r(&[b, m, n]);
    for dim in [0isize, 1, -1] {
        add(c, &format!("sum(dim={dim})"), vec![x3.clone()], move |v| v[0].sum(dim, false));
        add(c, &format!("mean(dim={dim}, keepdim)"), vec![x3.clone()], move |v| v[0].mean(dim, true));
        add(c, &format!("max(dim={dim})"), vec![x3.clone()], move |v| v[0].max(dim, false));
    }
    add(c, "sum_all", vec![x3.clone()], |v| v[0].sum_all());
    add(c, "mean_all", vec![x3.clone()], |v| v[0].mean_all());
    let wide = r(&[m, n.max(2)]);
    add(c, "var(unbiased)", vec![wide.clone()], |v| v[0].var(-1, false, true));
    add(c, "var(biased, keepdim)", vec![wide.clone()], |v| v[0].var(1, true, false));

    // Softmax family.
    add(c, "softmax(dim=-1)", vec![x3.clone()], |v| v[0].softmax(-1));
    add(c, "softmax(dim=1)", vec![x3.clone()], |v| v[0].softmax(1));
    add(c, "log_softmax(dim=-1)", vec![x3.clone()], |v| v[0].log_softmax(-1));
    add(c, "log_softmax(dim=0)", vec![x3.clone()], |v| v[0].log_softmax(0));

    // Matmul in every arrangement torch.matmul accepts.
    let (amk, bkn) = (r(&[m, k]), r(&[k, n]));
    add(c, "matmul", vec![amk.clone(), bkn.clone()], |v| v[0].matmul(&v[1]));
    add(c, "matmul (transposed operands)", vec![r(&[k, m]), r(&[n, k])], |v| v[0].t().matmul(&v[1].t()));
    add(c, "matmul (vector x matrix)", vec![r(&[k]), bkn.clone()], |v| v[0].matmul(&v[1]));
    add(c, "matmul (matrix x vector)", vec![amk.clone(), r(&[k])], |v| v[0].matmul(&v[1]));
    add(c, "matmul (vector x vector)", vec![r(&[k]), r(&[k])], |v| v[0].matmul(&v[1]));
    add(c, "matmul (batched)", vec![r(&[b, m, k]), r(&[b, k, n])], |v| v[0].matmul(&v[1]));
    add(c, "matmul (broadcast batch)", vec![r(&[b, 1, m, k]), r(&[2, k, n])], |v| v[0].matmul(&v[1]));
    add(c, "matmul (batched x matrix)", vec![r(&[b, m, k]), bkn.clone()], |v| v[0].matmul(&v[1]));

    // Views and joins.
    add(c, "reshape", vec![x3.clone()], move |v| v[0].reshape(&[-1, n as isize]).mul(&v[0].reshape(&[-1, n as isize])));
    add(c, "transpose", vec![x3.clone()], |v| v[0].transpose(0, 2).exp());
    add(c, "permute", vec![x3.clone()], |v| v[0].permute(&[2, 0, 1]).sigmoid());
    add(c, "narrow", vec![x3.clone()], move |v| v[0].narrow(2, n / 2, n - n / 2).exp());
    add(c, "expand", vec![r(&[m, 1])], move |v| v[0].expand([m, n]).tanh());
    add(c, "squeeze/unsqueeze", vec![r(&[m, 1])], |v| v[0].squeeze(1).unsqueeze(0).exp());
    add(c, "contiguous", vec![at.clone()], |v| v[0].t().contiguous().exp());
    add(c, "cat", vec![a.clone(), r(&[m, k])], |v| Var::cat(&[v[0].clone(), v[1].clone()], 1).tanh());
    add(c, "stack", vec![a.clone(), bb.clone()], |v| Var::stack(&[v[0].clone(), v[1].clone()], 1).tanh());

    // Indexing (the index tensors are constants).
    let rows = Tensor::from_vec((0..m + 2).map(|i| ((i * 7) % m) as i64).collect::<Vec<_>>(), [m + 2]).unwrap();
    let r2 = rows.clone();
    add(c, "index_select(dim=0, repeats)", vec![a.clone()], move |v| v[0].index_select(0, &r2).tanh());
    let cols = Tensor::from_vec(vec![(n - 1) as i64, 0, (n - 1) as i64], [3]).unwrap();
    add(c, "index_select(dim=1)", vec![a.clone()], move |v| v[0].index_select(1, &cols).exp());
    let ids = Tensor::from_vec((0..b * 3).map(|i| ((i * 5) % m) as i64).collect::<Vec<_>>(), [b, 3]).unwrap();
    let tied_ids = ids.clone();
    add(c, "embedding", vec![a.clone()], move |v| v[0].embedding(&ids).tanh());
    // GPT-2's tie: one table embeds the ids and is the output layer's weight,
    // so the lookup's gradient is scattered into the head's (`backward_into`).
    add(c, "embedding tied to linear", vec![a.clone()], move |v| {
        linear(&v[0].embedding(&tied_ids).tanh(), &v[0], None)
    });
    let gidx = Tensor::from_vec((0..m * 2).map(|i| ((i * 3) % n) as i64).collect::<Vec<_>>(), [m, 2]).unwrap();
    add(c, "gather(dim=1)", vec![a.clone()], move |v| v[0].gather(1, &gidx).exp());
    let mask = r(&[m, n]).compare_scalar(0.0, tensor::CmpOp::Gt);
    add(c, "where", vec![a.clone(), row.clone()], move |v| Var::where_cond(&mask, &v[0], &v[1]));
    let causal = Tensor::ones([m, n], DType::F64).triu(1);
    add(c, "masked_fill", vec![a.clone()], move |v| v[0].masked_fill(&causal, -3.0).exp());

    // Causal attention on [B, H, T, D] queries, keys and values.
    let heads = [b, 2, m + 1, k];
    let two_heads = AttentionOptions::new(2);
    add(c, "attention (heads first)", vec![r(&heads), r(&heads), r(&heads)], move |v| {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &two_heads)
    });
    // The same from a packed [B, T, 3·H·D] projection, heads read in place.
    add(c, "attention (packed qkv)", vec![r(&[b, m + 1, 3 * 2 * k])], move |v| {
        attention(Qkv::Packed(&v[0]), &two_heads)
    });

    // Normalisation, dropout, layers.
    let (gamma, beta) = (r(&[n]), r(&[n]));
    add(c, "layer_norm", vec![x3.clone(), gamma, beta], |v| layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5));
    add(c, "layer_norm (no affine)", vec![x3.clone()], |v| layer_norm(&v[0], None, 1e-5));
    add(c, "dropout(p=0.3)", vec![x3.clone()], |v| dropout(&v[0], 0.3, true, &mut Generator::seed(3)));
    let (w, bias) = (r(&[n, k]), r(&[n]));
    add(c, "matmul + bias", vec![r(&[b, m, k]), w.clone(), bias.clone()], |v| v[0].matmul(&v[1].t()).add(&v[2]));
    add(c, "linear", vec![r(&[b, m, k]), w.clone(), bias], |v| linear(&v[0], &v[1], Some(&v[2])));
    add(c, "linear (no bias)", vec![r(&[m, k]), w], |v| linear(&v[0], &v[1], None));

    // Losses (targets are constants).
    let classes = n.max(2);
    let logits = r(&[b * m, classes]);
    let targets: Vec<i64> =
        (0..b * m).map(|i| if i == 1 { IGNORE_INDEX } else { ((i * 3) % classes) as i64 }).collect();
    let targets = Tensor::from_vec(targets, [b * m]).unwrap();
    let t2 = targets.reshape(&[b as isize, m as isize]);
    add(c, "cross_entropy (ignore_index)", vec![logits.clone()], move |v| cross_entropy(&v[0], &targets));
    let logits3 = logits.reshape(&[b as isize, m as isize, classes as isize]);
    add(c, "cross_entropy [B,T,C]", vec![logits3], move |v| cross_entropy(&v[0], &t2));
    let probs = Tensor::uniform([m, n], 0.1, 0.9, DType::F64, &mut gen.borrow_mut());
    let labels = r(&[m, n]).compare_scalar(0.0, tensor::CmpOp::Ge).to_dtype(DType::F64);
    add(c, "binary_cross_entropy", vec![probs], move |v| binary_cross_entropy(&v[0], &Var::constant(labels.clone())));
    add(c, "mse_loss", vec![a.clone(), bb.clone()], |v| mse_loss(&v[0], &v[1]));

    cases
}
