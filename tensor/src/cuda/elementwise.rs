//! Elementwise ops on CUDA tensors: unary functions, tensor-scalar ops,
//! broadcast binary ops, comparisons and `where`.
//!
//! The dtype rules are the CPU's (`cpu/elementwise.rs`; `ops/unary.rs` and
//! `ops/binary.rs` have checked that an int64 tensor asks only for the
//! integer-safe ops): floats compute in f32 (half types widen and narrow
//! inside the kernel), and int8 goes through int64 and back.
//! Broadcasting happens in the layouts: both operands are viewed at the
//! output's shape, with stride 0 where they repeat.

use kernels::cuda::elementwise::{self as k, BinaryCode, CompareCode, UnaryCode};

use super::{bring, cuda_device, cuda_of, dense, device_layout, ok, packed, slice, with_cuda_float, with_cuda_type};
use crate::dtype::DType;
use crate::ops::binary::{BinaryOp, CmpOp};
use crate::ops::unary::{ScalarOp, UnaryOp};
use crate::tensor::Tensor;

fn unary_code(op: UnaryOp) -> UnaryCode {
    match op {
        UnaryOp::Neg => UnaryCode::Neg,
        UnaryOp::Abs => UnaryCode::Abs,
        UnaryOp::Exp => UnaryCode::Exp,
        UnaryOp::Log => UnaryCode::Log,
        UnaryOp::Sqrt => UnaryCode::Sqrt,
        UnaryOp::Tanh => UnaryCode::Tanh,
        UnaryOp::Sigmoid => UnaryCode::Sigmoid,
        UnaryOp::Relu => UnaryCode::Relu,
        UnaryOp::GeluTanh => UnaryCode::Gelu,
        UnaryOp::GeluTanhGrad => UnaryCode::GeluGrad,
        UnaryOp::Square => UnaryCode::Square,
        UnaryOp::Recip => UnaryCode::Recip,
        UnaryOp::Sin => UnaryCode::Sin,
        UnaryOp::Cos => UnaryCode::Cos,
        UnaryOp::Silu => UnaryCode::Silu,
    }
}

/// Runs the unary kernel with op code `code` and scalar `c`.
fn launch_unary(x: &Tensor, code: UnaryCode, c: f64, name: &str) -> Tensor {
    if x.dtype() == DType::I8 {
        return launch_unary(&x.to_dtype(DType::I64), code, c, name).to_dtype(DType::I8);
    }
    let dev = cuda_device(x);
    let layout = device_layout(x.layout(), name);
    with_cuda_type!(x.dtype(), name, T => {
        let y = ok(k::unary::<T>(dev, slice::<T>(x), &layout, code, c), name);
        dense(dev, y, x.shape().clone())
    })
}

pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Tensor {
    launch_unary(x, unary_code(op), 0.0, op.name())
}

/// `x op c`; for f32 and half tensors `c` is rounded to f32 first, as
/// the CPU does (`powf`'s exponent excepted).
pub(crate) fn scalar(x: &Tensor, op: ScalarOp, c: f64) -> Tensor {
    let code = match op {
        ScalarOp::Add => UnaryCode::AddScalar,
        ScalarOp::Sub => UnaryCode::SubScalar,
        ScalarOp::Mul => UnaryCode::MulScalar,
        ScalarOp::Div => UnaryCode::DivScalar,
        ScalarOp::ClampMin => UnaryCode::ClampMin,
        ScalarOp::ClampMax => UnaryCode::ClampMax,
        ScalarOp::Powf => return launch_unary(x, UnaryCode::Powf, c, op.name()),
    };
    let c = if x.dtype().is_float() { c as f32 as f64 } else { c };
    launch_unary(x, code, c, op.name())
}

fn binary_code(op: BinaryOp) -> BinaryCode {
    match op {
        BinaryOp::Add => BinaryCode::Add,
        BinaryOp::Sub => BinaryCode::Sub,
        BinaryOp::Mul => BinaryCode::Mul,
        BinaryOp::Div => BinaryCode::Div,
        BinaryOp::Maximum => BinaryCode::Maximum,
        BinaryOp::Minimum => BinaryCode::Minimum,
        BinaryOp::Pow => BinaryCode::Pow,
    }
}

/// `a op b` viewed at the broadcast `shape`.
pub(crate) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, shape: &[usize]) -> Tensor {
    let device = cuda_of(&[a, b]).expect("binary: a CUDA operand");
    let (a, b) = (bring(a, device, op.name()), bring(b, device, op.name()));
    if a.dtype() == DType::I8 {
        return binary(&a.to_dtype(DType::I64), &b.to_dtype(DType::I64), op, shape).to_dtype(DType::I8);
    }
    let la = device_layout(&a.layout().broadcast_as(shape).expect("broadcast checked"), op.name());
    let lb = device_layout(&b.layout().broadcast_as(shape).expect("broadcast checked"), op.name());
    let dev = cuda_device(&a);
    with_cuda_type!(a.dtype(), op.name(), T => {
        let out = ok(k::binary::<T>(dev, slice::<T>(&a), &la, slice::<T>(&b), &lb, binary_code(op)), op.name());
        dense(dev, out, shape.to_vec())
    })
}

/// An int8 0/1 mask of `a op b` viewed at `shape`.
pub(crate) fn compare(a: &Tensor, b: &Tensor, op: CmpOp, shape: &[usize]) -> Tensor {
    let device = cuda_of(&[a, b]).expect("compare: a CUDA operand");
    let (a, b) = (bring(a, device, "compare"), bring(b, device, "compare"));
    let la = device_layout(&a.layout().broadcast_as(shape).expect("broadcast checked"), "compare");
    let lb = device_layout(&b.layout().broadcast_as(shape).expect("broadcast checked"), "compare");
    let code = match op {
        CmpOp::Eq => CompareCode::Eq,
        CmpOp::Ne => CompareCode::Ne,
        CmpOp::Lt => CompareCode::Lt,
        CmpOp::Le => CompareCode::Le,
        CmpOp::Gt => CompareCode::Gt,
        CmpOp::Ge => CompareCode::Ge,
    };
    let dev = cuda_device(&a);
    with_cuda_type!(a.dtype(), "compare", T => {
        let out = ok(k::compare::<T>(dev, slice::<T>(&a), &la, slice::<T>(&b), &lb, code), "compare");
        dense(dev, out, shape.to_vec())
    })
}

/// `mask ? a : b`, all three viewed at `shape`.
pub(crate) fn where_cond(mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Tensor {
    let device = cuda_of(&[mask, a, b]).expect("where_cond: a CUDA operand");
    let (mask, a, b) =
        (bring(mask, device, "where_cond"), bring(a, device, "where_cond"), bring(b, device, "where_cond"));
    let mask = mask.to_dtype(DType::I8);
    let view = |t: &Tensor| device_layout(&t.layout().broadcast_as(shape).expect("broadcast checked"), "where_cond");
    let (lm, la, lb) = (view(&mask), view(&a), view(&b));
    let dev = cuda_device(&a);
    with_cuda_type!(a.dtype(), "where_cond", T => {
        let out = ok(
            k::where_cond::<T>(dev, slice::<i8>(&mask), &lm, slice::<T>(&a), &la, slice::<T>(&b), &lb),
            "where_cond",
        );
        dense(dev, out, shape.to_vec())
    })
}

/// dL/dx of GELU in one pass: dy · gelu'(x).
pub(crate) fn gelu_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    let device = cuda_of(&[x, dy]).expect("gelu_backward: a CUDA operand");
    let (x, dy) = (packed(&bring(x, device, "gelu_backward")), packed(&bring(dy, device, "gelu_backward")));
    let dev = cuda_device(&x);
    with_cuda_float!(x.dtype(), "gelu_backward", T => {
        let out = ok(k::gelu_backward::<T>(dev, slice::<T>(&x), slice::<T>(&dy), x.numel()), "gelu_backward");
        dense(dev, out, x.shape().clone())
    })
}

/// `a += b` for CUDA tensors (gradient accumulation). A fresh sum replaces
/// `a`'s buffer: the same values as an in-place add, and no other tensor
/// can see a change because none is made.
pub(crate) fn add_in_place(a: &mut Tensor, b: &Tensor) {
    *a = binary(a, b, BinaryOp::Add, a.dims());
}
