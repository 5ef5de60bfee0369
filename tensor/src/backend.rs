//! The backend boundary: what a device must provide, and the one place that
//! asks which device a tensor is on.
//!
//! Every op reaches the arithmetic by the same three steps:
//!
//! 1. `ops/<family>.rs` holds the public method (`Tensor::softmax`,
//!    `Tensor::linear`, …). It checks the arguments once (shapes, dtypes,
//!    dimensions, with both shapes in the panic message) and works out
//!    what the op means (the output shape, which dimension).
//! 2. It asks [`of`] for the backend of its operands. This is the only
//!    place where the device is matched: CUDA when any operand lives on a
//!    GPU (the CUDA backend copies CPU operands next to it, such as token
//!    ids made on the host), the CPU otherwise.
//! 3. It calls that backend's method of [`Backend`], the list of every op a
//!    device must implement. [`Cpu`] implements them in `cpu/<family>.rs`
//!    with the loops and row kernels of `kernels::cpu`; `Cuda` implements
//!    them in `cuda/<family>.rs` as launches of `kernels::cuda`. The two
//!    folders mirror each other file for file, and neither checks again
//!    what step 1 checked: they trust their caller and only compute.
//!
//! So `x.softmax(-1)` reads `ops/rows.rs` (the contract), then
//! `cpu/rows.rs` or `cuda/rows.rs` (the arithmetic), and nothing above this
//! crate ever asks where a tensor lives. (Attention keeps its own route in
//! `ops/attention.rs` for now.)

use crate::dtype::DType;
use crate::ops::binary::{BinaryOp, CmpOp};
use crate::ops::cross_entropy::CrossEntropyOutput;
use crate::ops::moe_route::ExpertRouting;
use crate::ops::optim::{AdamWSettings, AdamWSlot};
use crate::ops::reduce::ReduceOp;
use crate::ops::rms_norm::{RmsNormGrads, RmsNormOutput};
use crate::ops::rows::{LayerNormGrads, LayerNormOutput};
use crate::ops::unary::{ScalarOp, UnaryOp};
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::Device;

pub(crate) use crate::cpu::Cpu;

/// The ops a device implements. Arguments arrive checked (see step 1
/// above): shapes agree, dimensions are resolved to `usize`, and where an
/// op broadcasts, the output `shape` is given.
pub(crate) trait Backend: Sync {
    // ----- making and moving tensors (`cpu/shape.rs`, `cpu/cast.rs`) --------

    /// A new tensor on `device` with every element `value`.
    fn full(&self, shape: Shape, value: f64, dtype: DType, device: Device) -> Tensor;
    /// A fresh dense copy of any view.
    fn contiguous_copy(&self, t: &Tensor) -> Tensor;
    /// Every element converted to `dtype` (a different dtype from `t`'s).
    fn to_dtype(&self, t: &Tensor, dtype: DType) -> Tensor;
    /// `tensors` joined along `dim` into a tensor of shape `dims`.
    fn cat(&self, tensors: &[Tensor], dim: usize, dims: Vec<usize>) -> Tensor;
    /// tril (`lower`) or triu over the last two dimensions.
    fn triangle(&self, t: &Tensor, diagonal: isize, lower: bool) -> Tensor;
    /// `src` written into positions `start..` of `dim` of the dense `dst`.
    fn write_window(&self, dst: &mut Tensor, dim: usize, start: usize, src: &Tensor);

    // ----- elementwise (`cpu/elementwise.rs`) -------------------------------

    fn unary(&self, x: &Tensor, op: UnaryOp) -> Tensor;
    fn scalar(&self, x: &Tensor, op: ScalarOp, c: f64) -> Tensor;
    /// dy · gelu'(x) in one pass.
    fn gelu_backward(&self, x: &Tensor, dy: &Tensor) -> Tensor;
    fn binary(&self, a: &Tensor, b: &Tensor, op: BinaryOp, shape: &[usize]) -> Tensor;
    fn compare(&self, a: &Tensor, b: &Tensor, op: CmpOp, shape: &[usize]) -> Tensor;
    fn where_cond(&self, mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Tensor;
    /// a += b for tensors of one shape and dtype.
    fn add_in_place(&self, a: &mut Tensor, b: &Tensor);

    // ----- reductions (`cpu/reduce.rs`) -------------------------------------

    fn reduce(&self, x: &Tensor, dim: usize, keepdim: bool, op: ReduceOp) -> Tensor;
    fn sum_all(&self, x: &Tensor) -> Tensor;
    fn mean_all(&self, x: &Tensor) -> Tensor;
    /// Σ x² over every element, accumulated in f64.
    fn sum_squares(&self, x: &Tensor) -> f64;

    // ----- row kernels (`cpu/rows.rs`, `cpu/cross_entropy.rs`) --------------

    /// softmax (or log-softmax) of each row of a dense tensor (rows are the
    /// last dimension).
    fn softmax(&self, x: &Tensor, log: bool) -> Tensor;
    /// Its backward, for dense y and dy of one shape.
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor, log: bool) -> Tensor;
    fn layer_norm(&self, x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput;
    fn layer_norm_backward(
        &self,
        x: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
    ) -> LayerNormGrads;
    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor, ignore: i64) -> CrossEntropyOutput;
    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        ignore: i64,
        scale: f64,
    ) -> Tensor;

    // ----- the Llama block's ops (`cpu/rms_norm.rs`, `cpu/rope.rs`,
    // `cpu/swiglu.rs`) ----------------------------------------------------------

    /// RMSNorm over the last dimension, and its backward.
    fn rms_norm(&self, x: &Tensor, weight: Option<&Tensor>, eps: f64) -> RmsNormOutput;
    fn rms_norm_backward(&self, x: &Tensor, weight: Option<&Tensor>, rstd: &Tensor, dy: &Tensor) -> RmsNormGrads;
    /// x `[.., T, H, D]` rotated by the f32 tables `[T, D/2]` (by the
    /// negated angles when `inverse`), into a dense tensor.
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, inverse: bool) -> Tensor;
    /// dy · silu'(x) in one pass.
    fn silu_backward(&self, x: &Tensor, dy: &Tensor) -> Tensor;
    /// silu(gate) · up, and its (dgate, dup), each one pass.
    fn swiglu(&self, gate: &Tensor, up: &Tensor) -> Tensor;
    fn swiglu_backward(&self, gate: &Tensor, up: &Tensor, dy: &Tensor) -> (Tensor, Tensor);

    // ----- indexing (`cpu/index.rs`) ----------------------------------------
    //
    // Index values are checked against their dimension where they are read
    // (on the host for both backends), since on a GPU that is where they are.

    fn index_select(&self, x: &Tensor, dim: usize, indices: &Tensor) -> Tensor;
    fn index_add(&self, x: &Tensor, dim: usize, indices: &Tensor, src: &Tensor) -> Tensor;
    fn gather(&self, x: &Tensor, dim: usize, index: &Tensor) -> Tensor;
    fn scatter_add(&self, x: &Tensor, dim: usize, index: &Tensor, src: &Tensor) -> Tensor;
    /// dW `[vocab, C]` of an embedding lookup.
    fn embedding_backward(&self, ids: &Tensor, dy: &Tensor, vocab: usize) -> Tensor;
    /// table += the embedding gradient, in place.
    fn embedding_backward_add(&self, table: &mut Tensor, ids: &Tensor, dy: &Tensor);

    // ----- mixture-of-experts routing (`cpu/moe_route.rs`) -----------------

    /// Each row's `k` largest probabilities' experts, grouped by expert.
    fn route_top_k(&self, probs: &Tensor, k: usize) -> ExpertRouting;

    // ----- matrix products (`cpu/matmul.rs`) --------------------------------

    /// `a` `[..batch, m, k]` · `b` `[..batch, k, n]`, both float and already
    /// broadcast to one batch shape, into a dense `[..batch, m, n]`.
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Tensor;
    /// x `[.., K]` · Wᵀ + b for W `[N, K]`.
    fn linear(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor;

    // ----- optimizer (`cpu/optim.rs`) ---------------------------------------

    /// One fused AdamW step over every slot, updating values and moments in
    /// place.
    fn adamw_step(&self, slots: &mut [AdamWSlot<'_>], settings: &AdamWSettings);
}

/// The backend that owns tensors on `device`.
pub(crate) fn on(device: Device) -> &'static dyn Backend {
    match device {
        Device::Cpu => &Cpu,
        Device::Cuda(_) => &crate::cuda::Cuda,
    }
}

/// The backend an op on `operands` runs on: the GPU's when any of them is
/// on one, else the CPU's.
pub(crate) fn of(operands: &[&Tensor]) -> &'static dyn Backend {
    on(operands.iter().map(|t| t.device()).find(|d| *d != Device::Cpu).unwrap_or(Device::Cpu))
}
