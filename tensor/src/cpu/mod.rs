//! Tensors in host memory: the CPU backend.
//!
//! [`Cpu`] implements each op of [`Backend`] with the loops and fused row
//! kernels of `kernels::cpu` (GEMM, softmax, layer norm, cross-entropy,
//! GELU, AdamW), one file per op family, mirroring `cuda/` file for file.
//! Floats compute in f32 or f64; half-precision tensors are stored here
//! and widened to f32 for arithmetic. The arguments arrive checked by
//! `ops/` (see `backend.rs`); index values are checked as they are read.

mod cast;
mod cross_entropy;
mod elementwise;
mod index;
mod matmul;
mod moe_route;
mod optim;
mod reduce;
mod rms_norm;
mod rope;
mod rows;
mod shape;
mod swiglu;

use crate::backend::Backend;
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

/// The CPU backend: each op of [`Backend`] in the file named for its family.
pub(crate) struct Cpu;

impl Backend for Cpu {
    fn full(&self, shape: Shape, value: f64, dtype: DType, _device: Device) -> Tensor {
        shape::full(shape, value, dtype)
    }
    fn contiguous_copy(&self, t: &Tensor) -> Tensor {
        shape::contiguous_copy(t)
    }
    fn to_dtype(&self, t: &Tensor, dtype: DType) -> Tensor {
        cast::to_dtype(t, dtype)
    }
    fn cat(&self, tensors: &[Tensor], dim: usize, dims: Vec<usize>) -> Tensor {
        shape::cat(tensors, dim, dims)
    }
    fn triangle(&self, t: &Tensor, diagonal: isize, lower: bool) -> Tensor {
        shape::triangle(t, diagonal, lower)
    }
    fn write_window(&self, dst: &mut Tensor, dim: usize, start: usize, src: &Tensor) {
        shape::write_window(dst, dim, start, src)
    }

    fn unary(&self, x: &Tensor, op: UnaryOp) -> Tensor {
        elementwise::unary(x, op)
    }
    fn scalar(&self, x: &Tensor, op: ScalarOp, c: f64) -> Tensor {
        elementwise::scalar(x, op, c)
    }
    fn gelu_backward(&self, x: &Tensor, dy: &Tensor) -> Tensor {
        elementwise::gelu_backward(x, dy)
    }
    fn binary(&self, a: &Tensor, b: &Tensor, op: BinaryOp, shape: &[usize]) -> Tensor {
        elementwise::binary(a, b, op, shape)
    }
    fn compare(&self, a: &Tensor, b: &Tensor, op: CmpOp, shape: &[usize]) -> Tensor {
        elementwise::compare(a, b, op, shape)
    }
    fn where_cond(&self, mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Tensor {
        elementwise::where_cond(mask, a, b, shape)
    }
    fn add_in_place(&self, a: &mut Tensor, b: &Tensor) {
        elementwise::add_in_place(a, b)
    }

    fn reduce(&self, x: &Tensor, dim: usize, keepdim: bool, op: ReduceOp) -> Tensor {
        reduce::reduce(x, dim, keepdim, op)
    }
    fn sum_all(&self, x: &Tensor) -> Tensor {
        reduce::sum_all(x)
    }
    fn mean_all(&self, x: &Tensor) -> Tensor {
        reduce::mean_all(x)
    }
    fn sum_squares(&self, x: &Tensor) -> f64 {
        reduce::sum_squares(x)
    }

    fn softmax(&self, x: &Tensor, log: bool) -> Tensor {
        rows::softmax(x, log)
    }
    fn softmax_backward(&self, y: &Tensor, dy: &Tensor, log: bool) -> Tensor {
        rows::softmax_backward(y, dy, log)
    }
    fn layer_norm(&self, x: &Tensor, gamma: Option<&Tensor>, beta: Option<&Tensor>, eps: f64) -> LayerNormOutput {
        rows::layer_norm(x, gamma, beta, eps)
    }
    fn layer_norm_backward(
        &self,
        x: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        dy: &Tensor,
    ) -> LayerNormGrads {
        rows::layer_norm_backward(x, gamma, mean, rstd, dy)
    }
    fn cross_entropy(&self, logits: &Tensor, targets: &Tensor, ignore: i64) -> CrossEntropyOutput {
        cross_entropy::cross_entropy(logits, targets, ignore)
    }
    fn cross_entropy_backward(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        lse: &Tensor,
        ignore: i64,
        scale: f64,
    ) -> Tensor {
        cross_entropy::cross_entropy_backward(logits, targets, lse, ignore, scale)
    }

    fn rms_norm(&self, x: &Tensor, weight: Option<&Tensor>, eps: f64) -> RmsNormOutput {
        rms_norm::rms_norm(x, weight, eps)
    }
    fn rms_norm_backward(&self, x: &Tensor, weight: Option<&Tensor>, rstd: &Tensor, dy: &Tensor) -> RmsNormGrads {
        rms_norm::rms_norm_backward(x, weight, rstd, dy)
    }
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, inverse: bool) -> Tensor {
        rope::rope(x, cos, sin, inverse)
    }
    fn silu_backward(&self, x: &Tensor, dy: &Tensor) -> Tensor {
        swiglu::silu_backward(x, dy)
    }
    fn swiglu(&self, gate: &Tensor, up: &Tensor) -> Tensor {
        swiglu::swiglu(gate, up)
    }
    fn swiglu_backward(&self, gate: &Tensor, up: &Tensor, dy: &Tensor) -> (Tensor, Tensor) {
        swiglu::swiglu_backward(gate, up, dy)
    }

    fn index_select(&self, x: &Tensor, dim: usize, indices: &Tensor) -> Tensor {
        index::index_select(x, dim, indices)
    }
    fn index_add(&self, x: &Tensor, dim: usize, indices: &Tensor, src: &Tensor) -> Tensor {
        index::index_add(x, dim, indices, src)
    }
    fn gather(&self, x: &Tensor, dim: usize, index: &Tensor) -> Tensor {
        index::gather(x, dim, index)
    }
    fn scatter_add(&self, x: &Tensor, dim: usize, index: &Tensor, src: &Tensor) -> Tensor {
        index::scatter_add(x, dim, index, src)
    }
    fn embedding_backward(&self, ids: &Tensor, dy: &Tensor, vocab: usize) -> Tensor {
        index::embedding_backward(ids, dy, vocab)
    }
    fn embedding_backward_add(&self, table: &mut Tensor, ids: &Tensor, dy: &Tensor) {
        index::embedding_backward_add(table, ids, dy)
    }

    fn route_top_k(&self, probs: &Tensor, k: usize) -> ExpertRouting {
        moe_route::route_top_k(probs, k)
    }
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Tensor {
        matmul::matmul(a, b)
    }
    fn linear(&self, x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
        matmul::linear(x, weight, bias)
    }

    fn adamw_step(&self, slots: &mut [AdamWSlot<'_>], settings: &AdamWSettings) {
        optim::adamw_step(slots, settings)
    }
}
