//! Elementwise ops on host tensors: unary functions, tensor-scalar ops,
//! broadcast binary ops, comparisons, `where` and `a += b`.
//!
//! The output is always dense and row-major whatever the inputs' strides.
//! Float math runs in f32 or f64; half-precision inputs are widened to f32,
//! computed, and narrowed back (the CPU has no fast f16 arithmetic); int8
//! goes through int64 and back.
//!
//! Broadcasting happens in the layouts: both operands are viewed at the
//! output's shape (stride 0 along repeated dimensions, see `layout.rs`),
//! then walked together row by row. Nothing is materialised at the larger
//! shape except the output.

use rayon::prelude::*;

use crate::dtype::{DType, Element, FloatElement};
use crate::layout::Layout;
use crate::ops::binary::{BinaryOp, CmpOp};
use crate::ops::unary::{ScalarOp, UnaryOp};
use crate::tensor::{Tensor, PARALLEL_ELEMS};

// ----- one operand --------------------------------------------------------

fn float_unary<T: FloatElement>(x: &Tensor, op: UnaryOp) -> Tensor {
    match op {
        UnaryOp::Neg => x.map::<T, T>(|v| -v),
        UnaryOp::Abs => x.map::<T, T>(|v| v.abs()),
        UnaryOp::Exp => x.map::<T, T>(|v| v.exp()),
        UnaryOp::Log => x.map::<T, T>(|v| v.ln()),
        UnaryOp::Sqrt => x.map::<T, T>(|v| v.sqrt()),
        UnaryOp::Tanh => x.map::<T, T>(|v| v.tanh()),
        UnaryOp::Sigmoid => x.map::<T, T>(|v| T::one() / (T::one() + (-v).exp())),
        UnaryOp::Relu => x.map::<T, T>(|v| if v > T::ZERO { v } else { T::ZERO }),
        UnaryOp::GeluTanh => {
            let src = x.contiguous_data::<T>();
            let mut out = crate::pool::for_overwrite::<T>(src.len());
            kernels::cpu::gelu::gelu_forward(&src, &mut out);
            Tensor::from_contiguous(out, x.shape().clone())
        }
        UnaryOp::GeluTanhGrad => gelu_backward(x, &x.ones_like()),
        UnaryOp::Square => x.map::<T, T>(|v| v * v),
        UnaryOp::Recip => x.map::<T, T>(|v| T::one() / v),
        UnaryOp::Sin => x.map::<T, T>(|v| v.sin()),
        UnaryOp::Cos => x.map::<T, T>(|v| v.cos()),
        UnaryOp::Silu => {
            let src = x.contiguous_data::<T>();
            let mut out = crate::pool::for_overwrite::<T>(src.len());
            kernels::cpu::swiglu::silu_forward(&src, &mut out);
            Tensor::from_contiguous(out, x.shape().clone())
        }
    }
}

pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Tensor {
    match x.dtype() {
        DType::F32 => float_unary::<f32>(x, op),
        DType::F64 => float_unary::<f64>(x, op),
        DType::F16 | DType::BF16 => unary(&x.to_dtype(DType::F32), op).to_dtype(x.dtype()),
        // Only the ops `UnaryOp::defined_for_integers` names reach here.
        DType::I64 => match op {
            UnaryOp::Neg => x.map::<i64, i64>(|v| -v),
            UnaryOp::Abs => x.map::<i64, i64>(|v| v.abs()),
            UnaryOp::Relu => x.map::<i64, i64>(|v| v.max(0)),
            UnaryOp::Square => x.map::<i64, i64>(|v| v * v),
            _ => unreachable!("{}: checked to be defined for integers", op.name()),
        },
        DType::I8 => unary(&x.to_dtype(DType::I64), op).to_dtype(DType::I8),
    }
}

/// dy · gelu'(x), through the fused kernel of `kernels::cpu::gelu`.
pub(crate) fn gelu_backward(x: &Tensor, dy: &Tensor) -> Tensor {
    match x.dtype() {
        DType::F32 | DType::F64 => crate::with_float_type!(x.dtype(), "gelu_backward", T => {
            let (xs, g) = (x.contiguous_data::<T>(), dy.contiguous_data::<T>());
            let mut dx = crate::pool::for_overwrite::<T>(xs.len());
            kernels::cpu::gelu::gelu_backward(&xs, &g, &mut dx);
            Tensor::from_contiguous(dx, x.shape().clone())
        }),
        _ => gelu_backward(&x.to_dtype(DType::F32), &dy.to_dtype(DType::F32)).to_dtype(x.dtype()),
    }
}

/// x ∘ c elementwise.
pub(crate) fn scalar(x: &Tensor, op: ScalarOp, c: f64) -> Tensor {
    if let ScalarOp::Powf = op {
        return powf(x, c);
    }
    let f = move |x: f64, c: f64| match op {
        ScalarOp::Add => x + c,
        ScalarOp::Sub => x - c,
        ScalarOp::Mul => x * c,
        ScalarOp::Div => x / c,
        ScalarOp::ClampMin => x.max(c),
        ScalarOp::ClampMax => x.min(c),
        ScalarOp::Powf => unreachable!("handled above"),
    };
    match x.dtype() {
        DType::F32 => {
            // Computing in f32 keeps results bit-identical to f32 tensor ops.
            let c32 = c as f32;
            x.map::<f32, f32>(move |v| f(v as f64, c32 as f64) as f32)
        }
        DType::F64 => x.map::<f64, f64>(move |v| f(v, c)),
        DType::F16 | DType::BF16 => scalar(&x.to_dtype(DType::F32), op, c).to_dtype(x.dtype()),
        DType::I64 => x.map::<i64, i64>(move |v| f(v as f64, c) as i64),
        DType::I8 => scalar(&x.to_dtype(DType::I64), op, c).to_dtype(DType::I8),
    }
}

/// x^p for a float tensor.
fn powf(x: &Tensor, p: f64) -> Tensor {
    match x.dtype() {
        DType::F32 => x.map::<f32, f32>(|v| v.powf(p as f32)),
        DType::F64 => x.map::<f64, f64>(|v| v.powf(p)),
        DType::F16 | DType::BF16 => powf(&x.to_dtype(DType::F32), p).to_dtype(x.dtype()),
        d => unreachable!("powf: checked to be a float tensor, got {d}"),
    }
}

// ----- two operands -------------------------------------------------------

macro_rules! float_binary {
    ($T:ty, $a:expr, $b:expr, $shape:expr, $op:expr) => {
        match $op {
            BinaryOp::Add => zip_map::<$T, $T>($a, $b, $shape, |x, y| x + y),
            BinaryOp::Sub => zip_map::<$T, $T>($a, $b, $shape, |x, y| x - y),
            BinaryOp::Mul => zip_map::<$T, $T>($a, $b, $shape, |x, y| x * y),
            BinaryOp::Div => zip_map::<$T, $T>($a, $b, $shape, |x, y| x / y),
            BinaryOp::Maximum => zip_map::<$T, $T>($a, $b, $shape, |x, y| if x >= y { x } else { y }),
            BinaryOp::Minimum => zip_map::<$T, $T>($a, $b, $shape, |x, y| if x <= y { x } else { y }),
            BinaryOp::Pow => zip_map::<$T, $T>($a, $b, $shape, |x, y| x.powf(y)),
        }
    };
}

pub(crate) fn binary(a: &Tensor, b: &Tensor, op: BinaryOp, shape: &[usize]) -> Tensor {
    match a.dtype() {
        DType::F32 => float_binary!(f32, a, b, shape, op),
        DType::F64 => float_binary!(f64, a, b, shape, op),
        DType::F16 | DType::BF16 => {
            let wide = binary(&a.to_dtype(DType::F32), &b.to_dtype(DType::F32), op, shape);
            wide.to_dtype(a.dtype())
        }
        // Only the ops `BinaryOp::defined_for_integers` names reach here.
        DType::I64 => match op {
            BinaryOp::Add => zip_map::<i64, i64>(a, b, shape, |x, y| x + y),
            BinaryOp::Sub => zip_map::<i64, i64>(a, b, shape, |x, y| x - y),
            BinaryOp::Mul => zip_map::<i64, i64>(a, b, shape, |x, y| x * y),
            BinaryOp::Maximum => zip_map::<i64, i64>(a, b, shape, |x, y| x.max(y)),
            BinaryOp::Minimum => zip_map::<i64, i64>(a, b, shape, |x, y| x.min(y)),
            _ => unreachable!("{}: checked to be defined for integers", op.name()),
        },
        DType::I8 => binary(&a.to_dtype(DType::I64), &b.to_dtype(DType::I64), op, shape).to_dtype(DType::I8),
    }
}

/// An int8 0/1 mask of `a op b`.
pub(crate) fn compare(a: &Tensor, b: &Tensor, op: CmpOp, shape: &[usize]) -> Tensor {
    crate::with_type!(a.dtype(), T => {
        let f = move |x: T, y: T| -> i8 {
            let r = match op {
                CmpOp::Eq => x == y,
                CmpOp::Ne => x != y,
                CmpOp::Lt => x < y,
                CmpOp::Le => x <= y,
                CmpOp::Gt => x > y,
                CmpOp::Ge => x >= y,
            };
            r as i8
        };
        zip_map::<T, i8>(a, b, shape, f)
    })
}

/// `mask ? a : b`, all three viewed at `shape`.
pub(crate) fn where_cond(mask: &Tensor, a: &Tensor, b: &Tensor, shape: &[usize]) -> Tensor {
    let m = mask.to_dtype(DType::I8).expand(shape.to_vec()).contiguous();
    let m = m.contiguous_data::<i8>();
    let (a, b) = (a.expand(shape.to_vec()), b.expand(shape.to_vec()));
    crate::with_type!(a.dtype(), T => {
        let (va, vb) = (a.contiguous_data::<T>(), b.contiguous_data::<T>());
        let out: Vec<T> = m.iter().zip(va.iter().zip(vb.iter())).map(|(&m, (&x, &y))| if m != 0 { x } else { y }).collect();
        Tensor::from_contiguous(out, shape.to_vec())
    })
}

/// Walks `a` and `b` at the broadcast `shape` and collects `f(a, b)`.
fn zip_map<T: Element, U: Element>(
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Tensor {
    let la = a.layout().broadcast_as(shape).expect("broadcast checked by caller");
    let lb = b.layout().broadcast_as(shape).expect("broadcast checked by caller");
    let (sa, sb) = (a.storage_slice::<T>(), b.storage_slice::<T>());
    let numel: usize = shape.iter().product();
    let out: Vec<U> = if la.is_contiguous() && lb.is_contiguous() {
        let (xa, xb) = (&sa[la.offset()..la.offset() + numel], &sb[lb.offset()..lb.offset() + numel]);
        crate::tensor::map_slices(numel, |o, start| {
            for ((o, &x), &y) in o.iter_mut().zip(&xa[start..]).zip(&xb[start..]) {
                o.write(f(x, y));
            }
        })
    } else {
        zip_rows(&la, sa, &lb, sb, numel, &f)
    };
    Tensor::from_contiguous(out, shape.to_vec())
}

/// The strided path: one row (last dimension) at a time, rows in parallel.
fn zip_rows<T: Element, U: Element>(
    la: &Layout,
    sa: &[T],
    lb: &Layout,
    sb: &[T],
    numel: usize,
    f: &(impl Fn(T, T) -> U + Sync + Send),
) -> Vec<U> {
    let (n, stride_a) = la.row();
    let (_, stride_b) = lb.row();
    let (rows_a, rows_b) = (la.row_offsets(), lb.row_offsets());
    let mut out = crate::pool::for_overwrite::<U>(numel);
    if n == 0 {
        return out;
    }
    let fill = |(row, o): (usize, &mut [U])| {
        let (oa, ob) = (rows_a[row], rows_b[row]);
        match (stride_a, stride_b) {
            // Both rows dense (a bias row added to each row of activations):
            // a slice loop the compiler vectorises.
            (1, 1) => {
                for ((o, &x), &y) in o.iter_mut().zip(&sa[oa..oa + n]).zip(&sb[ob..ob + n]) {
                    *o = f(x, y);
                }
            }
            // One side constant along the row (a per-row scale).
            (1, 0) => {
                let y = sb[ob];
                for (o, &x) in o.iter_mut().zip(&sa[oa..oa + n]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = sa[oa];
                for (o, &y) in o.iter_mut().zip(&sb[ob..ob + n]) {
                    *o = f(x, y);
                }
            }
            _ => {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = f(sa[oa + j * stride_a], sb[ob + j * stride_b]);
                }
            }
        }
    };
    if numel >= PARALLEL_ELEMS {
        out.par_chunks_mut(n).enumerate().for_each(fill);
    } else {
        out.chunks_mut(n).enumerate().for_each(fill);
    }
    out
}

// ----- in place -----------------------------------------------------------

/// Elements per parallel task of `add_in_place`.
const CHUNK: usize = 1 << 14;

/// a += b in a's own buffer (copied first if shared, see `data_mut`).
pub(crate) fn add_in_place(a: &mut Tensor, b: &Tensor) {
    if !matches!(a.dtype(), DType::F32 | DType::F64) {
        *a = a.add(b);
        return;
    }
    crate::with_float_type!(a.dtype(), "add_", T => {
        let src = b.contiguous_data::<T>();
        let dst = a.data_mut::<T>();
        let add = |(d, s): (&mut [T], &[T])| d.iter_mut().zip(s).for_each(|(d, &s)| *d = *d + s);
        if dst.len() >= PARALLEL_ELEMS {
            dst.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(add);
        } else {
            add((dst, &src));
        }
    })
}
