//! A strided layout as a kernel argument.
//!
//! [`DeviceLayout`] is the Rust twin of `StridedLayout` in `prelude.cuh`
//! (same fields, same order, `#[repr(C)]`), passed to kernels by value, so
//! a launch needs no extra buffer. Before it goes to the GPU the layout is
//! simplified without changing which elements it names:
//!
//! - size-1 dimensions are dropped (their index is always 0);
//! - neighbouring dimensions are merged when the outer one steps exactly
//!   over the inner one (`stride[i] == stride[i+1] * dims[i+1]`): a dense
//!   `[B, T, C]` becomes `[B·T·C]`, and a `[B, T, C]` view that is
//!   transposed in its first two dimensions stays 3-D.
//!
//! Fewer dimensions mean fewer divisions per element on the GPU, a dense
//! layout is flagged `contiguous` (element i is at offset + i), and tensors
//! of more than [`MAX_DIMS`] dimensions usually fit after merging.

use cudarc::driver::DeviceRepr;

use super::error::{CudaError, Result};

/// Most dimensions a kernel layout holds (`MAX_DIMS` in prelude.cuh).
pub const MAX_DIMS: usize = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLayout {
    pub rank: i32,
    pub contiguous: i32,
    pub offset: i64,
    pub dims: [i64; MAX_DIMS],
    pub strides: [i64; MAX_DIMS],
}

// SAFETY: plain `#[repr(C)]` integers with the same layout as the C struct
// `StridedLayout` (int, int, long long, long long[8], long long[8]).
unsafe impl DeviceRepr for DeviceLayout {}

/// Dims and strides with size-1 dimensions dropped and mergeable
/// neighbours merged; the element order is unchanged.
pub fn simplify(dims: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    assert_eq!(dims.len(), strides.len(), "layout: {} dims with {} strides", dims.len(), strides.len());
    let mut out_d: Vec<usize> = Vec::new();
    let mut out_s: Vec<usize> = Vec::new();
    for (&d, &s) in dims.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (out_d.last_mut(), out_s.last_mut()) {
            (Some(pd), Some(ps)) if *ps == s * d => {
                *pd *= d;
                *ps = s;
            }
            _ => {
                out_d.push(d);
                out_s.push(s);
            }
        }
    }
    (out_d, out_s)
}

impl DeviceLayout {
    /// The layout of a view; errors when it needs more than [`MAX_DIMS`]
    /// dimensions even after merging.
    pub fn new(dims: &[usize], strides: &[usize], offset: usize) -> Result<DeviceLayout> {
        let (d, s) = simplify(dims, strides);
        if d.len() > MAX_DIMS {
            return Err(CudaError::Unsupported(format!(
                "a view of shape {dims:?} with strides {strides:?} needs {} dimensions; CUDA kernels take at most {MAX_DIMS}",
                d.len()
            )));
        }
        let contiguous = d.len() <= 1 && s.first().is_none_or(|&s| s == 1);
        let mut layout = DeviceLayout {
            rank: d.len() as i32,
            contiguous: contiguous as i32,
            offset: offset as i64,
            dims: [1; MAX_DIMS],
            strides: [0; MAX_DIMS],
        };
        for (i, (&di, &si)) in d.iter().zip(&s).enumerate() {
            layout.dims[i] = di as i64;
            layout.strides[i] = si as i64;
        }
        Ok(layout)
    }

    /// A dense row-major buffer of `numel` elements from `offset`.
    pub fn dense(numel: usize, offset: usize) -> DeviceLayout {
        DeviceLayout::new(&[numel], &[1], offset).expect("one dimension always fits")
    }

    /// Elements the layout names (the product of its dims).
    pub fn numel(&self) -> usize {
        self.dims[..self.rank as usize].iter().product::<i64>() as usize
    }

    /// The largest buffer position any element reads (the offset when the
    /// layout is empty of dimensions).
    pub fn max_position(&self) -> i64 {
        if self.contiguous != 0 {
            return self.offset + self.numel().max(1) as i64 - 1;
        }
        self.offset + (0..self.rank as usize).map(|d| (self.dims[d] - 1).max(0) * self.strides[d]).sum::<i64>()
    }

    /// Errors unless every element lies inside a buffer of `len` elements:
    /// the guard that keeps a kernel from reading outside its buffer.
    pub fn check_within(&self, len: usize, what: &str) -> Result<()> {
        if self.numel() == 0 || (self.max_position() as u64) < len as u64 {
            Ok(())
        } else {
            Err(CudaError::Unsupported(format!(
                "{what}: the layout reaches element {} of a buffer of {len}",
                self.max_position()
            )))
        }
    }

    /// A layout with exactly these dims and strides (no simplifying), for
    /// kernels that need each dimension's coordinate.
    pub fn exact(dims: &[usize], strides: &[usize], offset: usize) -> Result<DeviceLayout> {
        if dims.len() > MAX_DIMS {
            return Err(CudaError::Unsupported(format!(
                "shape {dims:?} has {} dimensions; CUDA kernels take at most {MAX_DIMS}",
                dims.len()
            )));
        }
        let mut layout = DeviceLayout {
            rank: dims.len() as i32,
            contiguous: 0,
            offset: offset as i64,
            dims: [1; MAX_DIMS],
            strides: [0; MAX_DIMS],
        };
        for (i, (&d, &st)) in dims.iter().zip(strides).enumerate() {
            layout.dims[i] = d as i64;
            layout.strides[i] = st as i64;
        }
        Ok(layout)
    }

    /// The buffer position of element `i` in row-major order; the same
    /// arithmetic as `layout_offset` in prelude.cuh, for tests.
    pub fn position(&self, mut i: i64) -> i64 {
        if self.contiguous != 0 {
            return self.offset + i;
        }
        let mut off = self.offset;
        for d in (0..self.rank as usize).rev() {
            off += (i % self.dims[d]) * self.strides[d];
            i /= self.dims[d];
        }
        off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Positions by the definition: every index tuple, row-major.
    fn naive(dims: &[usize], strides: &[usize], offset: usize) -> Vec<i64> {
        let n: usize = dims.iter().product();
        (0..n)
            .map(|mut i| {
                let mut off = offset;
                for d in (0..dims.len()).rev() {
                    off += (i % dims[d]) * strides[d];
                    i /= dims[d];
                }
                off as i64
            })
            .collect()
    }

    #[test]
    fn dense_tensors_collapse_to_one_contiguous_dimension() {
        let l = DeviceLayout::new(&[2, 3, 4], &[12, 4, 1], 5).unwrap();
        assert_eq!((l.rank, l.contiguous, l.dims[0], l.offset), (1, 1, 24, 5));
        assert_eq!(simplify(&[1, 1], &[7, 3]), (vec![], vec![]));
        assert_eq!(DeviceLayout::new(&[1, 1], &[7, 3], 2).unwrap().position(0), 2);
    }

    #[test]
    fn views_keep_their_order_after_simplifying() {
        let cases: Vec<(Vec<usize>, Vec<usize>, usize)> = vec![
            (vec![3, 4], vec![1, 3], 0),               // transpose
            (vec![2, 3, 4], vec![0, 4, 1], 0),         // broadcast leading dim
            (vec![2, 1, 3, 4], vec![12, 99, 1, 3], 7), // size-1 dim with odd stride
            (vec![2, 3, 4, 5], vec![60, 20, 5, 1], 0),
            (vec![4, 2, 3], vec![6, 0, 1], 1), // broadcast middle dim
            // ten dimensions, dense: merges to one
            (vec![2; 10], (0..10).rev().map(|i| 1 << i).collect(), 0),
        ];
        for (dims, strides, offset) in cases {
            let l = DeviceLayout::new(&dims, &strides, offset).unwrap();
            let n: usize = dims.iter().product();
            let got: Vec<i64> = (0..n as i64).map(|i| l.position(i)).collect();
            assert_eq!(got, naive(&dims, &strides, offset), "dims {dims:?} strides {strides:?}");
        }
    }

    #[test]
    fn bounds_cover_the_farthest_element() {
        let l = DeviceLayout::new(&[3, 4], &[1, 3], 2).unwrap();
        assert_eq!(l.max_position(), 2 + 11);
        assert!(l.check_within(14, "t").is_ok());
        assert!(l.check_within(13, "t").is_err());
        let b = DeviceLayout::new(&[5, 4], &[0, 1], 0).unwrap();
        assert_eq!(b.max_position(), 3);
        assert_eq!(DeviceLayout::dense(10, 5).max_position(), 14);
        assert!(DeviceLayout::new(&[0, 4], &[4, 1], 100).unwrap().check_within(0, "empty").is_ok());
    }

    #[test]
    fn too_many_unmergeable_dimensions_is_an_error() {
        let dims = vec![2; 9];
        let strides: Vec<usize> = (0..9).map(|i| 1 << (2 * i)).collect();
        assert!(DeviceLayout::new(&dims, &strides, 0).is_err());
    }

    #[test]
    fn the_struct_matches_the_c_layout() {
        assert_eq!(std::mem::size_of::<DeviceLayout>(), 4 + 4 + 8 + 8 * 8 + 8 * 8);
        assert_eq!(std::mem::align_of::<DeviceLayout>(), 8);
    }
}
