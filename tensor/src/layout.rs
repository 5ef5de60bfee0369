//! Layout: how an n-dimensional index maps into a flat buffer.
//!
//! Element `[i0, i1, …]` lives at `offset + i0·strides[0] + i1·strides[1] + …`.
//! That one formula makes most "data movement" free: a transpose swaps two
//! strides, a slice moves the offset and shrinks a size, and broadcasting a
//! size-1 dimension sets its stride to 0 so the same element is read again.
//! Only when an op needs dense memory does `contiguous()` copy.

use crate::shape::{resolve_dim, Shape};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A dense row-major layout starting at 0.
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout { shape, strides, offset: 0 }
    }

    pub fn new(shape: Shape, strides: Vec<usize>, offset: usize) -> Self {
        assert_eq!(shape.rank(), strides.len(), "layout: shape {shape} with {} strides", strides.len());
        Layout { shape, strides, offset }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Dense and row-major, so the elements are `buf[offset..offset+numel]`
    /// in order. Size-1 dimensions may have any stride.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    pub fn transpose(&self, d0: usize, d1: usize) -> Layout {
        let mut l = self.clone();
        l.shape.0.swap(d0, d1);
        l.strides.swap(d0, d1);
        l
    }

    pub fn permute(&self, order: &[usize]) -> Layout {
        let rank = self.shape.rank();
        let mut seen = vec![false; rank];
        assert_eq!(order.len(), rank, "permute: order {order:?} for a tensor of shape {}", self.shape);
        for &d in order {
            assert!(d < rank && !seen[d], "permute: {order:?} is not a permutation of 0..{rank}");
            seen[d] = true;
        }
        Layout {
            shape: Shape(order.iter().map(|&d| self.dims()[d]).collect()),
            strides: order.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        }
    }

    /// Keeps indices `start..start+len` of one dimension.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Layout {
        let size = self.dims()[dim];
        assert!(start + len <= size, "narrow: {start}..{} is outside dimension {dim} of size {size}", start + len);
        let mut l = self.clone();
        l.shape.0[dim] = len;
        l.offset += start * self.strides[dim];
        l
    }

    /// Views the layout as `shape`, repeating size-1 and missing leading
    /// dimensions with stride 0. `None` if the shapes do not broadcast.
    pub fn broadcast_as(&self, shape: &[usize]) -> Option<Layout> {
        let rank = shape.len();
        let own = self.dims();
        if own.len() > rank {
            return None;
        }
        let lead = rank - own.len();
        let mut strides = vec![0; rank];
        for i in 0..rank {
            if i < lead {
                continue;
            }
            let d = own[i - lead];
            if d == shape[i] {
                strides[i] = self.strides[i - lead];
            } else if d != 1 {
                return None;
            }
        }
        Some(Layout { shape: Shape(shape.to_vec()), strides, offset: self.offset })
    }

    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        // Any stride works for a size-1 dimension; this one keeps
        // `is_contiguous` simple for the common case.
        let stride = if dim < self.strides.len() { self.strides[dim] * self.dims()[dim] } else { 1 };
        l.shape.0.insert(dim, 1);
        l.strides.insert(dim, stride);
        l
    }

    pub fn squeeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        if l.shape.0[dim] == 1 {
            l.shape.0.remove(dim);
            l.strides.remove(dim);
        }
        l
    }

    /// A view with `shape` over the same elements without copying, if the
    /// strides allow it (always when contiguous).
    pub fn view_as(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout { offset: self.offset, ..Layout::contiguous(shape.to_vec()) });
        }
        None
    }

    /// The buffer offset of the first element of every row, where a row runs
    /// along the last dimension. A rank-0 layout has one row of length 1.
    /// Rows come in row-major order, which is the order of a dense output.
    pub fn row_offsets(&self) -> Vec<usize> {
        let dims = self.dims();
        if dims.is_empty() {
            return vec![self.offset];
        }
        let outer = &dims[..dims.len() - 1];
        let n_rows: usize = outer.iter().product();
        if dims[dims.len() - 1] == 0 || n_rows == 0 {
            return Vec::new();
        }
        let mut offsets = Vec::with_capacity(n_rows);
        let mut index = vec![0usize; outer.len()];
        let mut off = self.offset;
        for _ in 0..n_rows {
            offsets.push(off);
            for d in (0..outer.len()).rev() {
                index[d] += 1;
                off += self.strides[d];
                if index[d] < outer[d] {
                    break;
                }
                off -= self.strides[d] * outer[d];
                index[d] = 0;
            }
        }
        offsets
    }

    /// Length and stride of a row (the last dimension); `(1, 1)` for rank 0.
    pub fn row(&self) -> (usize, usize) {
        match (self.dims().last(), self.strides.last()) {
            (Some(&n), Some(&s)) => (n, s),
            _ => (1, 1),
        }
    }

    /// Every element's buffer offset, in row-major order.
    pub fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        let (n, s) = self.row();
        self.row_offsets().into_iter().flat_map(move |start| (0..n).map(move |j| start + j * s))
    }

    /// Moves `dim` to the end; reductions and softmax then work along rows.
    pub fn move_dim_last(&self, dim: usize) -> Layout {
        let rank = self.shape.rank();
        let order: Vec<usize> = (0..rank).filter(|&d| d != dim).chain(std::iter::once(dim)).collect();
        self.permute(&order)
    }

    pub fn resolve(&self, dim: isize, op: &str) -> usize {
        resolve_dim(dim, self.shape.rank(), op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_narrow_are_stride_arithmetic() {
        let l = Layout::contiguous([2, 3]);
        let t = l.transpose(0, 1);
        assert_eq!(t.dims(), &[3, 2]);
        assert_eq!(t.strides(), &[1, 3]);
        assert!(!t.is_contiguous());
        assert_eq!(t.offsets().collect::<Vec<_>>(), vec![0, 3, 1, 4, 2, 5]);
        let n = l.narrow(1, 1, 2);
        assert_eq!(n.offsets().collect::<Vec<_>>(), vec![1, 2, 4, 5]);
    }

    #[test]
    fn broadcast_repeats_with_stride_zero() {
        let l = Layout::contiguous([3]);
        let b = l.broadcast_as(&[2, 3]).unwrap();
        assert_eq!(b.strides(), &[0, 1]);
        assert_eq!(b.offsets().collect::<Vec<_>>(), vec![0, 1, 2, 0, 1, 2]);
        assert!(Layout::contiguous([2]).broadcast_as(&[3]).is_none());
    }
}
