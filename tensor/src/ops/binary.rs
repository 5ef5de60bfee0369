//! Elementwise functions of two tensors, with NumPy broadcasting.
//!
//! `a + b` for shapes `[B, T, C]` and `[C]` adds the bias to every row: both
//! operands are viewed at the broadcast shape (stride 0 along repeated
//! dimensions, see `layout.rs`), then walked together row by row. Nothing is
//! materialised at the larger shape except the output.
//!
//! Comparisons return masks as int8 0/1 tensors, which `where_cond` and
//! `masked_fill` accept.

use rayon::prelude::*;

use crate::dtype::{DType, Element};
use crate::layout::Layout;
use crate::shape::broadcast_shapes;
use crate::tensor::{Tensor, PARALLEL_ELEMS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Pow => "pow",
        }
    }
}

/// The broadcast shape of two operands, panicking with the op and both shapes.
pub fn broadcast_or_panic(op: &str, a: &Tensor, b: &Tensor) -> Vec<usize> {
    broadcast_shapes(a.dims(), b.dims())
        .unwrap_or_else(|| panic!("{op}: shapes {} and {} cannot broadcast", a.shape(), b.shape()))
}

/// Walks `a` and `b` at the broadcast `shape` and collects `f(a, b)`.
pub(crate) fn zip_map<T: Element, U: Element>(
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

impl Tensor {
    /// An elementwise binary op with broadcasting. Both operands must have
    /// the same dtype.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Tensor {
        if self.device().is_cuda() || rhs.device().is_cuda() {
            return crate::cuda::binary(self, rhs, op);
        }
        assert_eq!(self.dtype(), rhs.dtype(), "{}: dtypes {} and {} differ", op.name(), self.dtype(), rhs.dtype());
        let shape = broadcast_or_panic(op.name(), self, rhs);
        match self.dtype() {
            DType::F32 => float_binary!(f32, self, rhs, &shape, op),
            DType::F64 => float_binary!(f64, self, rhs, &shape, op),
            DType::F16 | DType::BF16 => {
                let wide = self.to_dtype(DType::F32).binary(&rhs.to_dtype(DType::F32), op);
                wide.to_dtype(self.dtype())
            }
            DType::I64 => match op {
                BinaryOp::Add => zip_map::<i64, i64>(self, rhs, &shape, |x, y| x + y),
                BinaryOp::Sub => zip_map::<i64, i64>(self, rhs, &shape, |x, y| x - y),
                BinaryOp::Mul => zip_map::<i64, i64>(self, rhs, &shape, |x, y| x * y),
                BinaryOp::Maximum => zip_map::<i64, i64>(self, rhs, &shape, |x, y| x.max(y)),
                BinaryOp::Minimum => zip_map::<i64, i64>(self, rhs, &shape, |x, y| x.min(y)),
                _ => panic!("{}: not defined for int64 tensors (convert with .to_dtype(DType::F32))", op.name()),
            },
            DType::I8 => self.to_dtype(DType::I64).binary(&rhs.to_dtype(DType::I64), op).to_dtype(DType::I8),
        }
    }

    pub fn add(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Add)
    }
    pub fn sub(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Div)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Maximum)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Minimum)
    }
    pub fn pow(&self, rhs: &Tensor) -> Tensor {
        self.binary(rhs, BinaryOp::Pow)
    }

    /// An elementwise comparison with broadcasting; an int8 0/1 mask.
    pub fn compare(&self, rhs: &Tensor, op: CmpOp) -> Tensor {
        if self.device().is_cuda() || rhs.device().is_cuda() {
            return crate::cuda::compare(self, rhs, op);
        }
        assert_eq!(self.dtype(), rhs.dtype(), "compare: dtypes {} and {} differ", self.dtype(), rhs.dtype());
        let shape = broadcast_or_panic("compare", self, rhs);
        crate::with_type!(self.dtype(), T => {
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
            zip_map::<T, i8>(self, rhs, &shape, f)
        })
    }

    pub fn eq(&self, rhs: &Tensor) -> Tensor {
        self.compare(rhs, CmpOp::Eq)
    }
    pub fn ne(&self, rhs: &Tensor) -> Tensor {
        self.compare(rhs, CmpOp::Ne)
    }
    pub fn lt(&self, rhs: &Tensor) -> Tensor {
        self.compare(rhs, CmpOp::Lt)
    }
    pub fn le(&self, rhs: &Tensor) -> Tensor {
        self.compare(rhs, CmpOp::Le)
    }
    pub fn gt(&self, rhs: &Tensor) -> Tensor {
        self.compare(rhs, CmpOp::Gt)
    }
    pub fn ge(&self, rhs: &Tensor) -> Tensor {
        self.compare(rhs, CmpOp::Ge)
    }

    /// Compares against a scalar: `x.gt_scalar(0.0)` is the mask of positives.
    pub fn compare_scalar(&self, c: f64, op: CmpOp) -> Tensor {
        self.compare(&Tensor::full((), c, self.dtype()), op)
    }

    /// `mask ? a : b` elementwise, all three broadcast together (`torch.where`).
    /// The mask may be any dtype; non-zero means true.
    pub fn where_cond(mask: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
        if mask.device().is_cuda() || a.device().is_cuda() || b.device().is_cuda() {
            return crate::cuda::where_cond(mask, a, b);
        }
        assert_eq!(a.dtype(), b.dtype(), "where_cond: dtypes {} and {} differ", a.dtype(), b.dtype());
        let ab = broadcast_or_panic("where_cond", a, b);
        let shape = broadcast_shapes(mask.dims(), &ab)
            .unwrap_or_else(|| panic!("where_cond: mask shape {} cannot broadcast with {:?}", mask.shape(), ab));
        let m = mask.to_dtype(DType::I8).expand(shape.clone()).contiguous();
        let m = m.contiguous_data::<i8>();
        let (a, b) = (a.expand(shape.clone()), b.expand(shape.clone()));
        crate::with_type!(a.dtype(), T => {
            let (va, vb) = (a.contiguous_data::<T>(), b.contiguous_data::<T>());
            let out: Vec<T> = m.iter().zip(va.iter().zip(vb.iter())).map(|(&m, (&x, &y))| if m != 0 { x } else { y }).collect();
            Tensor::from_contiguous(out, shape)
        })
    }

    /// Replaces elements where `mask` is non-zero with `value`
    /// (`masked_fill(mask, -inf)` hides future positions in attention).
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Tensor {
        Tensor::where_cond(mask, &Tensor::full((), value, self.dtype()), self)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn broadcasting_adds_a_bias_to_every_row() {
        let x = Tensor::arange(0, 6).reshape(&[2, 3]).to_dtype(DType::F32);
        let b = Tensor::new([10.0, 20.0, 30.0]).unwrap();
        assert_eq!(x.add(&b).to_vec::<f32>(), vec![10., 21., 32., 13., 24., 35.]);
        let col = Tensor::new([[1.0], [2.0]]).unwrap();
        assert_eq!(x.mul(&col).to_vec::<f32>(), vec![0., 1., 2., 6., 8., 10.]);
        // Non-contiguous operand.
        assert_eq!(x.t().sub(&x.t()).to_vec::<f32>(), vec![0.0; 6]);
    }

    #[test]
    #[should_panic(expected = "add: shapes [2, 3] and [2] cannot broadcast")]
    fn mismatched_shapes_panic_with_both_shapes() {
        Tensor::zeros([2, 3], DType::F32).add(&Tensor::zeros([2], DType::F32));
    }

    #[test]
    fn masks_select_and_fill() {
        let x = Tensor::new([-1.0, 2.0, -3.0]).unwrap();
        let m = x.compare_scalar(0.0, CmpOp::Lt);
        assert_eq!(m.dtype(), DType::I8);
        assert_eq!(m.to_vec::<i8>(), vec![1, 0, 1]);
        assert_eq!(x.masked_fill(&m, 0.0).to_vec::<f32>(), vec![0.0, 2.0, 0.0]);
        let causal = Tensor::ones([2, 2], DType::F32).triu(1);
        let s = Tensor::zeros([2, 2], DType::F32).masked_fill(&causal, f64::NEG_INFINITY);
        assert_eq!(s.to_vec::<f32>()[1], f32::NEG_INFINITY);
    }
}
