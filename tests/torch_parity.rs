//! Parity with PyTorch: every differentiable op family, run in float32 on the
//! inputs PyTorch saw, must give PyTorch's forward output and PyTorch's
//! gradients, and the optimizers must walk a parameter through the same five
//! steps. The finite-difference suite (`autograd::gradcheck`) proves each
//! backward is the derivative of its forward; these fixtures prove the forward
//! is the op a PyTorch user means (dims, keepdim, broadcasting, ignore_index,
//! tie-breaking, the GELU approximation, AdamW's exact update) and that the
//! float32 arithmetic lands where PyTorch's does.
//!
//! The fixtures in `tests/fixtures/` come from `scripts/make_fixtures.py`.
//! For each case the file holds the inputs, the output, a random weight `r`
//! and d/d(input) of `(out * r).sum()`; a weighted sum makes every output
//! element matter to every gradient, so a wrong element cannot hide. The case
//! names below must match the script's exactly, in both directions, so a case
//! added on one side only fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use scratchgpt::autograd::loss::{binary_cross_entropy, cross_entropy, mse_loss};
use scratchgpt::autograd::optim::{AdamW, Optimizer, Sgd};
use scratchgpt::autograd::{attention, layer_norm, rms_norm, swiglu, Var};
use scratchgpt::tensor::{AttentionOptions, DType, Qkv, RopeConfig, RopeScaling, Tensor};

// ----- loading ----------------------------------------------------------------

/// One fixture file: its tensors by name and the `cases` metadata (case name
/// to the PyTorch expression that made it).
struct Fixture {
    name: String,
    tensors: BTreeMap<String, Tensor>,
    cases: BTreeMap<String, String>,
}

impl Fixture {
    fn load(family: &str) -> Fixture {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{family}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read fixture {} ({e}); generate the fixtures with `python3 scripts/make_fixtures.py` \
                 (needs `pip install torch safetensors numpy`)",
                path.display()
            )
        });
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let cases_json = meta.metadata().as_ref().and_then(|m| m.get("cases")).unwrap_or_else(|| {
            panic!("{}: no `cases` in __metadata__; rerun scripts/make_fixtures.py", path.display())
        });
        let cases: BTreeMap<String, String> = serde_json::from_str(cases_json).expect("cases metadata is JSON");
        let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let t = match view.dtype() {
                Dtype::F32 => {
                    let v: Vec<f32> =
                        view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
                    Tensor::from_vec(v, shape)
                }
                Dtype::I64 => {
                    let v: Vec<i64> =
                        view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
                    Tensor::from_vec(v, shape)
                }
                d => panic!("{}: tensor {name} has dtype {d:?}; fixtures hold only F32 and I64", path.display()),
            }
            .unwrap();
            tensors.insert(name, t);
        }
        Fixture { name: family.to_string(), tensors, cases }
    }

    fn get(&self, name: &str) -> &Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("{}.safetensors has no tensor `{name}`", self.name))
    }
}

// ----- comparing ----------------------------------------------------------------

/// |got − want| ≤ atol + rtol·|want|, elementwise (NumPy's `allclose`).
#[derive(Clone, Copy, Debug)]
struct Tol {
    rtol: f64,
    atol: f64,
}

/// float32 carries ~7 digits; 1e-5 leaves room for the few roundings by
/// which two correct implementations can differ. The absolute floor covers
/// values that cancel to near zero, where relative error means nothing.
const DEFAULT: Tol = Tol { rtol: 1e-5, atol: 1e-6 };

/// Compares shapes, dtype and values; describes the worst element on failure.
fn compare(what: &str, got: &Tensor, want: &Tensor, tol: Tol) -> Result<(), String> {
    if got.dims() != want.dims() {
        return Err(format!("{what}: shape {:?}, PyTorch has {:?}", got.dims(), want.dims()));
    }
    if got.dtype() != DType::F32 {
        return Err(format!("{what}: dtype {}, expected float32", got.dtype()));
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    // How far past its allowance each element is; NaN counts as infinitely far.
    let excess: Vec<f64> = g
        .iter()
        .zip(&w)
        .map(|(a, b)| {
            let e = (a - b).abs() - (tol.atol + tol.rtol * b.abs());
            if e.is_nan() {
                f64::INFINITY
            } else {
                e
            }
        })
        .collect();
    let bad = excess.iter().filter(|&&e| e > 0.0).count();
    if bad == 0 {
        return Ok(());
    }
    let i = (0..excess.len()).max_by(|&i, &j| excess[i].total_cmp(&excess[j])).unwrap();
    Err(format!(
        "{what}: {bad} of {} elements off (rtol {:e}, atol {:e}); worst at flat index {i}: ours {:e}, PyTorch {:e}, \
         |diff| {:e}",
        g.len(),
        tol.rtol,
        tol.atol,
        g[i],
        w[i],
        (g[i] - w[i]).abs()
    ))
}

// ----- running op cases -----------------------------------------------------------

/// The case's constants (`<case>.c.<name>`): indices, masks, targets.
struct Consts<'a> {
    fixture: &'a Fixture,
    case: &'a str,
}

impl Consts<'_> {
    fn get(&self, name: &str) -> Tensor {
        self.fixture.get(&format!("{}.c.{name}", self.case)).clone()
    }
}

type Op = fn(&[Var], &Consts) -> Var;

/// One row of a family's table: the case name and what it computes.
struct Case {
    name: &'static str,
    op: Op,
}

fn case(name: &'static str, op: Op) -> Case {
    Case { name, op }
}

/// Runs one case: forward on the fixture's inputs, then backward of
/// (out · r).sum(); returns every mismatch found.
fn run_case(fx: &Fixture, c: &Case) -> Vec<String> {
    let mut errors = Vec::new();
    let inputs: Vec<Var> =
        (0..).map_while(|i| fx.tensors.get(&format!("{}.in.{i}", c.name))).map(|t| Var::parameter(t.clone())).collect();
    assert!(!inputs.is_empty(), "{}: case {} has no inputs in the fixture", fx.name, c.name);
    let consts = Consts { fixture: fx, case: c.name };
    let out = (c.op)(&inputs, &consts);
    let label = format!("{}/{}", fx.name, c.name);
    if let Err(e) = compare(&format!("{label} forward"), &out.data(), fx.get(&format!("{}.out", c.name)), DEFAULT) {
        errors.push(e);
    }
    let r = Var::constant(fx.get(&format!("{}.r", c.name)).clone());
    out.mul(&r).sum_all().backward();
    for (i, x) in inputs.iter().enumerate() {
        let want = fx.get(&format!("{}.grad.{i}", c.name));
        match x.grad() {
            None => errors.push(format!("{label}: input {i} received no gradient")),
            Some(g) => {
                if let Err(e) = compare(&format!("{label} d/d(input {i})"), &g, want, DEFAULT) {
                    errors.push(e);
                }
            }
        }
    }
    errors
}

/// Runs a family's table against its fixture file; fails listing every
/// mismatch, and when the table and the file disagree on which cases exist.
fn check_family(family: &str, table: Vec<Case>) {
    let fx = Fixture::load(family);
    let ours: BTreeSet<&str> = table.iter().map(|c| c.name).collect();
    assert_eq!(ours.len(), table.len(), "{family}: duplicate case names in the Rust table");
    let theirs: BTreeSet<&str> = fx.cases.keys().map(String::as_str).collect();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "{family}: cases in this test but not in the fixture: {only_ours:?}; in the fixture but not in this test: \
         {only_theirs:?} (rerun scripts/make_fixtures.py, or add the case to both)"
    );
    let mut errors = Vec::new();
    for c in &table {
        errors.extend(run_case(&fx, c));
    }
    assert!(errors.is_empty(), "{} mismatches with PyTorch:\n{}", errors.len(), errors.join("\n"));
}

// ----- the op families ----------------------------------------------------------------

#[test]
fn unary_ops_match_pytorch() {
    check_family(
        "unary",
        vec![
            case("neg", |v, _| v[0].neg()),
            case("abs", |v, _| v[0].abs()),
            case("exp", |v, _| v[0].exp()),
            case("tanh", |v, _| v[0].tanh()),
            case("sigmoid", |v, _| v[0].sigmoid()),
            case("relu", |v, _| v[0].relu()),
            case("gelu", |v, _| v[0].gelu()),
            case("gelu_wide", |v, _| v[0].gelu()),
            case("mul_scalar", |v, _| v[0].mul_scalar(-2.5)),
            case("add_scalar", |v, _| v[0].add_scalar(0.75)),
            case("square", |v, _| v[0].square()),
            case("log", |v, _| v[0].log()),
            case("sqrt", |v, _| v[0].sqrt()),
            case("powf", |v, _| v[0].powf(2.5)),
            case("tanh_transposed", |v, _| v[0].t().tanh()),
            case("relu_at_zero", |v, _| v[0].relu()),
            case("abs_at_zero", |v, _| v[0].abs()),
        ],
    );
}

/// Each binary op in four arrangements: same shape, a broadcast row, a column
/// against a row (both operands broadcast), and a transposed (strided) lhs.
macro_rules! binary_cases {
    ($($name:literal => $op:ident),* $(,)?) => {
        vec![$(
            case(concat!($name, "_same"), |v, _| v[0].$op(&v[1])),
            case(concat!($name, "_row"), |v, _| v[0].$op(&v[1])),
            case(concat!($name, "_col_row"), |v, _| v[0].$op(&v[1])),
            case(concat!($name, "_transposed"), |v, _| v[0].t().$op(&v[1])),
        )*]
    };
}

#[test]
fn binary_ops_match_pytorch() {
    let mut table = binary_cases!("add" => add, "sub" => sub, "mul" => mul, "maximum" => maximum, "minimum" => minimum);
    table.extend([
        // Ties: the gradient is split evenly between equal operands.
        case("maximum_ties", |v, _| v[0].maximum(&v[1])),
        case("minimum_ties", |v, _| v[0].minimum(&v[1])),
        case("div_same", |v, _| v[0].div(&v[1])),
        case("div_row", |v, _| v[0].div(&v[1])),
        case("div_col", |v, _| v[0].div(&v[1])),
        case("add_rank3", |v, _| v[0].add(&v[1])),
        case("mul_rank3", |v, _| v[0].mul(&v[1])),
    ]);
    check_family("binary", table);
}

#[test]
fn reductions_match_pytorch() {
    check_family(
        "reduce",
        vec![
            case("sum_dim0", |v, _| v[0].sum(0, false)),
            case("sum_dim1", |v, _| v[0].sum(1, false)),
            case("sum_dim-1", |v, _| v[0].sum(-1, false)),
            case("mean_dim0_keepdim", |v, _| v[0].mean(0, true)),
            case("mean_dim1_keepdim", |v, _| v[0].mean(1, true)),
            case("mean_dim-1_keepdim", |v, _| v[0].mean(-1, true)),
            case("max_dim0", |v, _| v[0].max(0, false)),
            case("max_dim1", |v, _| v[0].max(1, false)),
            case("max_dim-1", |v, _| v[0].max(-1, false)),
            case("max_dim1_keepdim", |v, _| v[0].max(1, true)),
            case("sum_all", |v, _| v[0].sum_all()),
            case("mean_all", |v, _| v[0].mean_all()),
            case("var_unbiased", |v, _| v[0].var(-1, false, true)),
            case("var_biased_keepdim", |v, _| v[0].var(1, true, false)),
            case("var_dim0", |v, _| v[0].var(0, false, true)),
            case("mean_all_1024", |v, _| v[0].mean_all()),
            case("sum_dim1_1024", |v, _| v[0].sum(1, false)),
        ],
    );
}

#[test]
fn softmax_family_matches_pytorch() {
    check_family(
        "softmax",
        vec![
            case("softmax_dim-1", |v, _| v[0].softmax(-1)),
            case("softmax_dim1", |v, _| v[0].softmax(1)),
            case("softmax_dim0", |v, _| v[0].softmax(0)),
            case("log_softmax_dim-1", |v, _| v[0].log_softmax(-1)),
            case("log_softmax_dim0", |v, _| v[0].log_softmax(0)),
            case("softmax_transposed", |v, _| v[0].t().softmax(-1)),
            case("softmax_large", |v, _| v[0].softmax(-1)),
            // Logits near 100: the order of the subtractions in log_softmax
            // decides whether the small results keep their digits.
            case("log_softmax_large", |v, _| v[0].log_softmax(-1)),
        ],
    );
}

#[test]
fn matmul_matches_pytorch() {
    check_family(
        "matmul",
        vec![
            case("mm", |v, _| v[0].matmul(&v[1])),
            case("mm_transposed", |v, _| v[0].t().matmul(&v[1].t())),
            case("vec_mat", |v, _| v[0].matmul(&v[1])),
            case("mat_vec", |v, _| v[0].matmul(&v[1])),
            case("vec_vec", |v, _| v[0].matmul(&v[1])),
            case("batched", |v, _| v[0].matmul(&v[1])),
            case("broadcast_batch", |v, _| v[0].matmul(&v[1])),
            case("batched_mat", |v, _| v[0].matmul(&v[1])),
            case("batched_transposed", |v, _| v[0].transpose(1, 2).matmul(&v[1])),
            case("linear", |v, _| v[0].matmul(&v[1].t()).add(&v[2])),
        ],
    );
}

#[test]
fn views_and_joins_match_pytorch() {
    check_family(
        "shape",
        vec![
            case("reshape", |v, _| v[0].reshape(&[-1, 4]).mul(&v[0].reshape(&[-1, 4]))),
            case("transpose", |v, _| v[0].transpose(0, 2).exp()),
            case("permute", |v, _| v[0].permute(&[2, 0, 1]).sigmoid()),
            case("narrow", |v, _| v[0].narrow(2, 2, 2).exp()),
            case("narrow_middle", |v, _| v[0].narrow(1, 1, 1).exp()),
            case("expand", |v, _| v[0].expand([3, 4]).tanh()),
            case("squeeze_unsqueeze", |v, _| v[0].squeeze(1).unsqueeze(0).exp()),
            case("contiguous", |v, _| v[0].t().contiguous().exp()),
            case("cat", |v, _| Var::cat(&[v[0].clone(), v[1].clone()], 1).tanh()),
            case("cat_dim0", |v, _| Var::cat(&[v[0].clone(), v[1].clone()], 0).tanh()),
            case("stack", |v, _| Var::stack(&[v[0].clone(), v[1].clone()], 1).tanh()),
        ],
    );
}

#[test]
fn indexing_matches_pytorch() {
    check_family(
        "index",
        vec![
            case("index_select_dim0", |v, c| v[0].index_select(0, &c.get("idx")).tanh()),
            case("index_select_dim1", |v, c| v[0].index_select(1, &c.get("idx")).exp()),
            case("embedding", |v, c| v[0].embedding(&c.get("ids")).tanh()),
            case("gather_dim1", |v, c| v[0].gather(1, &c.get("idx")).exp()),
            case("gather_dim0", |v, c| v[0].gather(0, &c.get("idx")).exp()),
            case("where", |v, c| Var::where_cond(&c.get("mask"), &v[0], &v[1])),
            case("masked_fill", |v, c| v[0].masked_fill(&c.get("mask"), -3.0).exp()),
        ],
    );
}

#[test]
fn layer_norm_matches_pytorch() {
    check_family(
        "norm",
        vec![
            case("layer_norm", |v, _| layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5)),
            case("layer_norm_no_affine", |v, _| layer_norm(&v[0], None, 1e-5)),
            case("layer_norm_wide", |v, _| layer_norm(&v[0], Some((&v[1], &v[2])), 1e-5)),
            case("layer_norm_transposed", |v, _| layer_norm(&v[0].t(), Some((&v[1], &v[2])), 1e-5)),
        ],
    );
}

/// The Llama block's ops against transformers' formulas
/// (`scripts/make_llama_fixtures.py`): LlamaRMSNorm, apply_rotary_pos_emb
/// with rotate_half and each rope scaling type's inv_freq, SiLU and SwiGLU.
#[test]
fn llama_ops_match_pytorch() {
    // x is [B, T, H, D] = [1, 3, 2, 8]; the tables cover positions offset.. offset + 3.
    fn rope(x: &Var, scaling: RopeScaling, offset: usize) -> Var {
        x.rope(&RopeConfig { theta: 10000.0, head_dim: 8, scaling }.tables(offset, x.dim(1)))
    }
    check_family(
        "llama",
        vec![
            case("rms_norm", |v, _| rms_norm(&v[0], Some(&v[1]), 1e-6)),
            case("rms_norm_per_head", |v, _| rms_norm(&v[0], Some(&v[1]), 1e-6)),
            case("rope_default", |v, _| rope(&v[0], RopeScaling::None, 0)),
            case("rope_default_offset5", |v, _| rope(&v[0], RopeScaling::None, 5)),
            case("rope_linear", |v, _| rope(&v[0], RopeScaling::Linear { factor: 4.0 }, 2)),
            case("rope_dynamic", |v, _| rope(&v[0], RopeScaling::Dynamic { factor: 2.0, original_max: 4 }, 6)),
            case("rope_llama3", |v, _| {
                let scaling = RopeScaling::Llama3 {
                    factor: 8.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 8.0,
                    original_max: 1000,
                };
                rope(&v[0], scaling, 3)
            }),
            case("silu", |v, _| v[0].silu()),
            case("swiglu", |v, _| swiglu(&v[0], &v[1])),
        ],
    );
}

/// Grouped-query attention and sliding windows against PyTorch's
/// repeat_interleave + masked softmax (the script's `causal_attention`):
/// GQA with a window, MQA, queries at the end of a longer key sequence (a KV
/// cache), and packed `[B, T, (H + 2·Hkv)·D]` input with D = 3.
#[test]
fn grouped_and_windowed_attention_matches_pytorch() {
    fn heads(v: &[Var], options: AttentionOptions) -> Var {
        attention(Qkv::Heads { q: &v[0], k: &v[1], v: &v[2] }, &options)
    }
    check_family(
        "attention",
        vec![
            case("gqa_window", |v, _| heads(v, AttentionOptions::new(4).with_kv_heads(2).with_window(3))),
            case("mqa", |v, _| heads(v, AttentionOptions::new(4).with_kv_heads(1))),
            case("gqa_cached_window", |v, _| heads(v, AttentionOptions::new(4).with_kv_heads(2).with_window(3))),
            case("packed_gqa_window", |v, _| {
                attention(Qkv::Packed(&v[0]), &AttentionOptions::new(4).with_kv_heads(2).with_window(2))
            }),
        ],
    );
}

#[test]
fn losses_match_pytorch() {
    check_family(
        "loss",
        vec![
            case("cross_entropy_ignore", |v, c| cross_entropy(&v[0], &c.get("targets"))),
            case("cross_entropy_btc", |v, c| cross_entropy(&v[0], &c.get("targets"))),
            case("cross_entropy_many_classes", |v, c| cross_entropy(&v[0], &c.get("targets"))),
            case("binary_cross_entropy", |v, c| binary_cross_entropy(&v[0], &Var::constant(c.get("targets")))),
            case("mse_loss", |v, _| mse_loss(&v[0], &v[1])),
        ],
    );
}

// ----- optimizers ---------------------------------------------------------------------

/// Feeds the fixture's gradient for each of five steps and compares the
/// parameter after every step, so an error in the moments or the bias
/// correction shows at the step where it starts.
fn check_optimizer(prefix: &str, make: impl FnOnce(Vec<Var>) -> Box<dyn Optimizer>) {
    let fx = Fixture::load("optim");
    assert!(fx.cases.contains_key(prefix), "optim.safetensors has no `{prefix}` run");
    let p = Var::parameter(fx.get(&format!("{prefix}.param.0")).clone());
    let mut opt = make(vec![p.clone()]);
    let mut errors = Vec::new();
    for t in 1..=5 {
        p.set_grad(Some(fx.get(&format!("{prefix}.grad.{t}")).clone()));
        opt.step();
        let want = fx.get(&format!("{prefix}.param.{t}"));
        if let Err(e) = compare(&format!("{prefix} after step {t}"), &p.data(), want, DEFAULT) {
            errors.push(e);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn adamw_matches_pytorch() {
    check_optimizer("adamw", |params| Box::new(AdamW::with_options(params, 1e-2, (0.9, 0.999), 1e-8, 0.1)));
}

#[test]
fn sgd_with_momentum_matches_pytorch() {
    check_optimizer("sgd", |params| Box::new(Sgd::with_options(params, 0.1, 0.9, 0.01)));
}

// ----- the harness itself -----------------------------------------------------------------

/// The comparison must reject what it should, or every test above is void.
#[test]
fn comparison_rejects_wrong_values_and_shapes() {
    let want = Tensor::from_vec(vec![1.0f32, 0.0, -2.0], [3]).unwrap();
    assert!(compare("same", &want, &want, DEFAULT).is_ok());
    let near = Tensor::from_vec(vec![1.000_005f32, 5e-7, -2.000_01], [3]).unwrap();
    assert!(compare("within tolerance", &near, &want, DEFAULT).is_ok());
    let off = Tensor::from_vec(vec![1.0f32, 0.0, -2.001], [3]).unwrap();
    let err = compare("off", &off, &want, DEFAULT).unwrap_err();
    assert!(err.contains("1 of 3 elements off") && err.contains("flat index 2"), "{err}");
    let nan = Tensor::from_vec(vec![f32::NAN, 0.0, -2.0], [3]).unwrap();
    assert!(compare("nan", &nan, &want, DEFAULT).is_err());
    let reshaped = want.reshape(&[1, 3]);
    assert!(compare("shape", &reshaped, &want, DEFAULT).unwrap_err().contains("shape [1, 3]"));
    assert!(compare("dtype", &want.to_dtype(DType::F64), &want, DEFAULT).unwrap_err().contains("float64"));
}
