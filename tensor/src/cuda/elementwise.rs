//! Elementwise ops on CUDA tensors: unary functions, tensor-scalar ops,
//! broadcast binary ops, comparisons and `where`.
//!
//! The dtype rules are the CPU's (see `ops/unary.rs` and `ops/binary.rs`):
//! floats compute in f32 (half types widen and narrow inside the kernel),
//! int64 has the integer-safe ops, and int8 goes through int64 and back.
//! Broadcasting happens in the layouts: both operands are viewed at the
//! output's shape, with stride 0 where they repeat.

use kernels::cuda::elementwise::{self as k, BinaryCode, CompareCode, UnaryCode};

use super::{bring, cuda_device, cuda_of, dense, device_layout, ok, packed, slice, with_cuda_float, with_cuda_type};
use crate::dtype::DType;
use crate::ops::binary::{broadcast_or_panic, BinaryOp, CmpOp};
use crate::ops::unary::UnaryOp;
use crate::shape::broadcast_shapes;
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
    }
}

/// Runs the unary kernel with op code `code` and scalar `c`.
fn launch_unary(x: &Tensor, code: UnaryCode, c: f64, name: &str) -> Tensor {
    if x.dtype() == DType::I8 {
        return launch_unary(&x.to_dtype(DType::I64), code, c, name).to_dtype(DType::I8);
    }
    if x.dtype() == DType::I64 && !code.defined_for_integers() {
        panic!("{name}: needs a float tensor, got int64 (convert with .to_dtype(DType::F32))");
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

/// `x op c` for the scalar ops; `name` is the CPU op's name.
pub(crate) fn scalar(x: &Tensor, c: f64, name: &str) -> Tensor {
    let code = match name {
        "add_scalar" => UnaryCode::AddScalar,
        "sub_scalar" => UnaryCode::SubScalar,
        "mul_scalar" => UnaryCode::MulScalar,
        "div_scalar" => UnaryCode::DivScalar,
        "clamp_min" => UnaryCode::ClampMin,
        "clamp_max" => UnaryCode::ClampMax,
        other => panic!("{other}: no CUDA scalar op of that name"),
    };
    match x.dtype() {
        // The CPU rounds the scalar to f32 first, then computes in f64.
        DType::F32 | DType::F16 | DType::BF16 => launch_unary(x, code, c as f32 as f64, name),
        DType::I64 | DType::I8 => {
            assert!(c.fract() == 0.0, "{name}: int64 tensor with a fractional scalar {c}");
            launch_unary(x, code, c, name)
        }
        DType::F64 => unreachable!("float64 tensors are never on CUDA"),
    }
}

pub(crate) fn powf(x: &Tensor, p: f64) -> Tensor {
    assert!(
        matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16),
        "powf: needs a float tensor, got {}",
        x.dtype()
    );
    launch_unary(x, UnaryCode::Powf, p, "powf")
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

pub(crate) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Tensor {
    assert_eq!(a.dtype(), b.dtype(), "{}: dtypes {} and {} differ", op.name(), a.dtype(), b.dtype());
    let device = cuda_of(&[a, b]).expect("binary: a CUDA operand");
    let (a, b) = (bring(a, device, op.name()), bring(b, device, op.name()));
    if a.dtype() == DType::I8 {
        return binary(&a.to_dtype(DType::I64), &b.to_dtype(DType::I64), op).to_dtype(DType::I8);
    }
    let code = binary_code(op);
    if a.dtype() == DType::I64 && !code.defined_for_integers() {
        panic!("{}: not defined for int64 tensors (convert with .to_dtype(DType::F32))", op.name());
    }
    let shape = broadcast_or_panic(op.name(), &a, &b);
    let la = device_layout(&a.layout().broadcast_as(&shape).expect("broadcast checked"), op.name());
    let lb = device_layout(&b.layout().broadcast_as(&shape).expect("broadcast checked"), op.name());
    let dev = cuda_device(&a);
    with_cuda_type!(a.dtype(), op.name(), T => {
        let out = ok(k::binary::<T>(dev, slice::<T>(&a), &la, slice::<T>(&b), &lb, code), op.name());
        dense(dev, out, shape)
    })
}

pub(crate) fn compare(a: &Tensor, b: &Tensor, op: CmpOp) -> Tensor {
    assert_eq!(a.dtype(), b.dtype(), "compare: dtypes {} and {} differ", a.dtype(), b.dtype());
    let device = cuda_of(&[a, b]).expect("compare: a CUDA operand");
    let (a, b) = (bring(a, device, "compare"), bring(b, device, "compare"));
    let shape = broadcast_or_panic("compare", &a, &b);
    let la = device_layout(&a.layout().broadcast_as(&shape).expect("broadcast checked"), "compare");
    let lb = device_layout(&b.layout().broadcast_as(&shape).expect("broadcast checked"), "compare");
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
        dense(dev, out, shape)
    })
}

pub(crate) fn where_cond(mask: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    assert_eq!(a.dtype(), b.dtype(), "where_cond: dtypes {} and {} differ", a.dtype(), b.dtype());
    let device = cuda_of(&[mask, a, b]).expect("where_cond: a CUDA operand");
    let (mask, a, b) =
        (bring(mask, device, "where_cond"), bring(a, device, "where_cond"), bring(b, device, "where_cond"));
    let ab = broadcast_or_panic("where_cond", &a, &b);
    let shape = broadcast_shapes(mask.dims(), &ab)
        .unwrap_or_else(|| panic!("where_cond: mask shape {} cannot broadcast with {:?}", mask.shape(), ab));
    let mask = mask.to_dtype(DType::I8);
    let view = |t: &Tensor| device_layout(&t.layout().broadcast_as(&shape).expect("broadcast checked"), "where_cond");
    let (lm, la, lb) = (view(&mask), view(&a), view(&b));
    let dev = cuda_device(&a);
    with_cuda_type!(a.dtype(), "where_cond", T => {
        let out = ok(
            k::where_cond::<T>(dev, slice::<i8>(&mask), &lm, slice::<T>(&a), &la, slice::<T>(&b), &lb),
            "where_cond",
        );
        dense(dev, out, shape)
    })
}

/// dL/dx of GELU in one pass: dy · gelu'(x).
pub(crate) fn gelu_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    assert_eq!(x.shape(), dy.shape(), "gelu_backward: input {} and gradient {} differ", x.shape(), dy.shape());
    assert_eq!(x.dtype(), dy.dtype(), "gelu_backward: dtypes {} and {} differ", x.dtype(), dy.dtype());
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
    *a = binary(a, b, BinaryOp::Add);
}
