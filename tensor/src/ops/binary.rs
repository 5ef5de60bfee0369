//! Elementwise functions of two tensors, with NumPy broadcasting.
//!
//! `a + b` for shapes `[B, T, C]` and `[C]` adds the bias to every row: both
//! operands are viewed at the broadcast shape (stride 0 along repeated
//! dimensions, see `layout.rs`), then walked together row by row. Nothing is
//! materialised at the larger shape except the output.
//!
//! Comparisons return masks as int8 0/1 tensors, which `where_cond` and
//! `masked_fill` accept. Both operands must have the same dtype; int64 (and
//! int8) tensors have the ops that stay integers. The arithmetic is in
//! `cpu/elementwise.rs` and `cuda/elementwise.rs` (see `backend.rs`).

use crate::backend;
use crate::shape::broadcast_shapes;
use crate::tensor::Tensor;

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

    /// Whether int64 tensors can take this op and stay int64.
    pub fn defined_for_integers(self) -> bool {
        !matches!(self, BinaryOp::Div | BinaryOp::Pow)
    }
}

/// The broadcast shape of two operands, panicking with the op and both shapes.
pub fn broadcast_or_panic(op: &str, a: &Tensor, b: &Tensor) -> Vec<usize> {
    broadcast_shapes(a.dims(), b.dims())
        .unwrap_or_else(|| panic!("{op}: shapes {} and {} cannot broadcast", a.shape(), b.shape()))
}

impl Tensor {
    /// An elementwise binary op with broadcasting. Both operands must have
    /// the same dtype.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Tensor {
        assert_eq!(self.dtype(), rhs.dtype(), "{}: dtypes {} and {} differ", op.name(), self.dtype(), rhs.dtype());
        if !self.dtype().is_float() && !op.defined_for_integers() {
            panic!("{}: not defined for int64 tensors (convert with .to_dtype(DType::F32))", op.name());
        }
        let shape = broadcast_or_panic(op.name(), self, rhs);
        backend::of(&[self, rhs]).binary(self, rhs, op, &shape)
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
        assert_eq!(self.dtype(), rhs.dtype(), "compare: dtypes {} and {} differ", self.dtype(), rhs.dtype());
        let shape = broadcast_or_panic("compare", self, rhs);
        backend::of(&[self, rhs]).compare(self, rhs, op, &shape)
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
        assert_eq!(a.dtype(), b.dtype(), "where_cond: dtypes {} and {} differ", a.dtype(), b.dtype());
        let ab = broadcast_or_panic("where_cond", a, b);
        let shape = broadcast_shapes(mask.dims(), &ab)
            .unwrap_or_else(|| panic!("where_cond: mask shape {} cannot broadcast with {:?}", mask.shape(), ab));
        backend::of(&[mask, a, b]).where_cond(mask, a, b, &shape)
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
    }

    /// Every op on operands that are views: a transpose (row stride 2), a
    /// column window (dense rows at an offset, but not contiguous), and a
    /// broadcast column (stride 0), against a plain loop over indices. Each
    /// pair takes a different path through the strided walk, and the values
    /// all differ, so reading an element from the wrong place shows.
    #[test]
    fn every_op_reads_views_element_by_element() {
        // base[r][c] = r·4 + c + 1, so a view's element says where it came from.
        let base_value = |r: usize, c: usize| (r * 4 + c + 1) as f32;
        let base = Tensor::arange(1, 13).reshape(&[3, 4]).to_dtype(DType::F32);
        let other = Tensor::new([[0.5f32, 2.0, 7.5], [3.0, 0.25, 11.0]]).unwrap();
        let other_value = |i: usize, j: usize| [[0.5f32, 2.0, 7.5], [3.0, 0.25, 11.0]][i][j];
        // Views of shape [2, 3] and the element each holds at (i, j).
        type At = Box<dyn Fn(usize, usize) -> f32>;
        let transposed = base.narrow(0, 0, 3).narrow(1, 1, 2).t(); // [i][j] = base[j][1 + i]
        let window = base.narrow(0, 1, 2).narrow(1, 1, 3); // [i][j] = base[1 + i][1 + j]
        let column = base.narrow(1, 3, 1).narrow(0, 0, 2).expand([2, 3]); // [i][j] = base[i][3]
        let views: Vec<(&str, Tensor, At)> = vec![
            ("transposed", transposed, Box::new(move |i, j| base_value(j, 1 + i))),
            ("window", window, Box::new(move |i, j| base_value(1 + i, 1 + j))),
            ("column", column, Box::new(move |i, _| base_value(i, 3))),
            ("dense", other.clone(), Box::new(other_value)),
        ];
        let ops: [(BinaryOp, fn(f32, f32) -> f32); 7] = [
            (BinaryOp::Add, |a, b| a + b),
            (BinaryOp::Sub, |a, b| a - b),
            (BinaryOp::Mul, |a, b| a * b),
            (BinaryOp::Div, |a, b| a / b),
            (BinaryOp::Maximum, f32::max),
            (BinaryOp::Minimum, f32::min),
            (BinaryOp::Pow, f32::powf),
        ];
        for (name_a, a, at_a) in &views {
            for (name_b, b, at_b) in &views {
                for (op, f) in ops {
                    let mut want = Vec::new();
                    for i in 0..2 {
                        for j in 0..3 {
                            want.push(f(at_a(i, j), at_b(i, j)));
                        }
                    }
                    let got = a.binary(b, op).to_vec::<f32>();
                    assert_eq!(got, want, "{name_a} {} {name_b}", op.name());
                }
            }
        }
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
