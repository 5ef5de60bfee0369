//! Reshaping without copying, and the few shape ops that must copy.
//!
//! `view`, `transpose`, `permute`, `narrow`, `squeeze`, `unsqueeze` and
//! `expand` return a tensor over the same storage with a new layout (see
//! `layout.rs`). `reshape` is a view when the input is contiguous and a copy
//! otherwise. `contiguous`, `cat`, `stack`, `tril`/`triu` write new buffers
//! (`cpu/shape.rs`, `cuda/shape.rs`).

use crate::backend;
use crate::shape::{resolve_dim, Shape};
use crate::tensor::Tensor;

impl Tensor {
    /// The same elements with another shape, without copying. One dimension
    /// may be `-1` (inferred). Panics if the tensor is not contiguous: a
    /// transposed tensor's elements are not in the order the new shape needs.
    pub fn view(&self, shape: &[isize]) -> Tensor {
        let dims = self.infer_shape(shape, "view");
        let layout = self.layout().view_as(&dims).unwrap_or_else(|| {
            panic!(
                "view: tensor of shape {} with strides {:?} is not contiguous; use reshape (which copies) or .contiguous() first",
                self.shape(),
                self.strides()
            )
        });
        self.with_layout(layout)
    }

    /// Like `view`, but copies when the layout does not allow a view.
    pub fn reshape(&self, shape: &[isize]) -> Tensor {
        let dims = self.infer_shape(shape, "reshape");
        match self.layout().view_as(&dims) {
            Some(layout) => self.with_layout(layout),
            None => self.contiguous().view(shape),
        }
    }

    /// Reshape taking unsigned sizes (no `-1`).
    pub fn reshape_to(&self, shape: impl Into<Shape>) -> Tensor {
        let dims: Vec<isize> = shape.into().0.iter().map(|&d| d as isize).collect();
        self.reshape(&dims)
    }

    fn infer_shape(&self, shape: &[isize], op: &str) -> Vec<usize> {
        let known: usize = shape.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let unknown = shape.iter().filter(|&&d| d < 0).count();
        assert!(unknown <= 1, "{op}: only one dimension can be -1, got {shape:?}");
        let dims: Vec<usize> = shape
            .iter()
            .map(|&d| {
                if d >= 0 {
                    d as usize
                } else {
                    assert!(
                        known > 0 && self.numel() % known == 0,
                        "{op}: cannot infer -1 in {shape:?} for shape {}",
                        self.shape()
                    );
                    self.numel() / known
                }
            })
            .collect();
        let numel: usize = dims.iter().product();
        assert_eq!(
            numel,
            self.numel(),
            "{op}: shape {} ({} elements) cannot become {shape:?}",
            self.shape(),
            self.numel()
        );
        dims
    }

    /// All dimensions in one: shape `[numel]`.
    pub fn flatten_all(&self) -> Tensor {
        self.reshape(&[-1])
    }

    /// Swaps two dimensions (a view).
    pub fn transpose(&self, d0: isize, d1: isize) -> Tensor {
        let a = self.layout().resolve(d0, "transpose");
        let b = self.layout().resolve(d1, "transpose");
        self.with_layout(self.layout().transpose(a, b))
    }

    /// Transpose of a matrix: swaps the last two dimensions.
    pub fn t(&self) -> Tensor {
        assert!(self.rank() >= 2, "t: needs at least 2 dimensions, got shape {}", self.shape());
        self.transpose(-2, -1)
    }

    /// Reorders the dimensions (a view): `order[i]` is the old dim placed at i.
    pub fn permute(&self, order: &[usize]) -> Tensor {
        self.with_layout(self.layout().permute(order))
    }

    /// Indices `start..start+len` of `dim` (a view).
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Tensor {
        let d = self.layout().resolve(dim, "narrow");
        self.with_layout(self.layout().narrow(d, start, len))
    }

    /// Python-style `x[.., start:end]` along one dimension (a view).
    pub fn slice(&self, dim: isize, start: usize, end: usize) -> Tensor {
        assert!(start <= end, "slice: start {start} is after end {end}");
        self.narrow(dim, start, end - start)
    }

    /// Removes `dim` if its size is 1 (a view).
    pub fn squeeze(&self, dim: isize) -> Tensor {
        let d = self.layout().resolve(dim, "squeeze");
        self.with_layout(self.layout().squeeze(d))
    }

    /// Inserts a size-1 dimension at `dim`; `-1` appends (a view).
    pub fn unsqueeze(&self, dim: isize) -> Tensor {
        let d = resolve_dim(dim, self.rank() + 1, "unsqueeze");
        self.with_layout(self.layout().unsqueeze(d))
    }

    /// Repeats size-1 dimensions to `shape` with stride 0 (a view).
    pub fn expand(&self, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        let layout = self
            .layout()
            .broadcast_as(shape.dims())
            .unwrap_or_else(|| panic!("expand: shape {} cannot broadcast to {}", self.shape(), shape));
        self.with_layout(layout)
    }

    /// Same as `expand`, NumPy's name.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        self.expand(shape)
    }

    /// This tensor if already dense, otherwise a dense copy.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous_copy()
        }
    }

    /// Joins tensors along an existing dimension; all other sizes must match.
    pub fn cat(tensors: &[Tensor], dim: isize) -> Tensor {
        assert!(!tensors.is_empty(), "cat: no tensors given");
        let first = &tensors[0];
        let d = first.layout().resolve(dim, "cat");
        for t in tensors {
            assert_eq!(t.dtype(), first.dtype(), "cat: dtypes {} and {} differ", first.dtype(), t.dtype());
            let same = t.rank() == first.rank() && (0..t.rank()).all(|i| i == d || t.dims()[i] == first.dims()[i]);
            assert!(same, "cat: shape {} does not match {} outside dimension {d}", t.shape(), first.shape());
        }
        let mut dims = first.dims().to_vec();
        dims[d] = tensors.iter().map(|t| t.dims()[d]).sum();
        let operands: Vec<&Tensor> = tensors.iter().collect();
        backend::of(&operands).cat(tensors, d, dims)
    }

    /// Joins tensors of equal shape along a new dimension.
    pub fn stack(tensors: &[Tensor], dim: isize) -> Tensor {
        assert!(!tensors.is_empty(), "stack: no tensors given");
        let d = resolve_dim(dim, tensors[0].rank() + 1, "stack");
        for t in tensors {
            assert_eq!(t.shape(), tensors[0].shape(), "stack: shapes {} and {} differ", tensors[0].shape(), t.shape());
        }
        let expanded: Vec<Tensor> = tensors.iter().map(|t| t.unsqueeze(d as isize)).collect();
        Tensor::cat(&expanded, d as isize)
    }

    /// Keeps elements on and below the `diagonal`-th diagonal of the last two
    /// dims, zeroing the rest (`torch.tril`).
    pub fn tril(&self, diagonal: isize) -> Tensor {
        self.triangle(diagonal, true)
    }

    /// Keeps elements on and above the `diagonal`-th diagonal (`torch.triu`).
    /// `ones([T, T]).triu(1)` is the causal mask of future positions.
    pub fn triu(&self, diagonal: isize) -> Tensor {
        self.triangle(diagonal, false)
    }

    fn triangle(&self, diagonal: isize, lower: bool) -> Tensor {
        assert!(self.rank() >= 2, "tril/triu: needs at least 2 dimensions, got shape {}", self.shape());
        backend::of(&[self]).triangle(self, diagonal, lower)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn views_share_storage_and_reshape_copies_only_when_needed() {
        let a = Tensor::arange(0, 6).reshape(&[2, 3]);
        let t = a.t();
        assert!(t.shares_storage(&a));
        assert_eq!(t.to_vec::<i64>(), vec![0, 3, 1, 4, 2, 5]);
        let r = t.reshape(&[6]);
        assert!(!r.shares_storage(&a));
        assert_eq!(r.to_vec::<i64>(), vec![0, 3, 1, 4, 2, 5]);
        assert!(a.reshape(&[3, -1]).shares_storage(&a));
    }

    #[test]
    #[should_panic(expected = "not contiguous")]
    fn view_refuses_non_contiguous_input() {
        Tensor::arange(0, 6).reshape(&[2, 3]).t().view(&[6]);
    }

    #[test]
    fn cat_stack_and_triangles() {
        let a = Tensor::arange(0, 4).reshape(&[2, 2]);
        let b = Tensor::arange(4, 6).reshape(&[2, 1]);
        assert_eq!(Tensor::cat(&[a.clone(), b], 1).to_vec::<i64>(), vec![0, 1, 4, 2, 3, 5]);
        let s = Tensor::stack(&[a.clone(), a.clone()], 1);
        assert_eq!(s.dims(), &[2, 2, 2]);
        assert_eq!(s.to_vec::<i64>(), vec![0, 1, 0, 1, 2, 3, 2, 3]);
        let m = Tensor::ones([3, 3], DType::F32).triu(1);
        assert_eq!(m.to_vec::<f32>(), vec![0., 1., 1., 0., 0., 1., 0., 0., 0.]);
        assert_eq!(a.tril(0).to_vec::<i64>(), vec![0, 0, 2, 3]);
    }

    #[test]
    fn expand_and_narrow() {
        let a = Tensor::new([1.0, 2.0]).unwrap().unsqueeze(0).expand([3, 2]);
        assert_eq!(a.strides(), &[0, 1]);
        assert_eq!(a.to_vec::<f32>(), vec![1., 2., 1., 2., 1., 2.]);
        let n = Tensor::arange(0, 10).narrow(0, 2, 3);
        assert_eq!(n.to_vec::<i64>(), vec![2, 3, 4]);
    }
}
