//! The `Tensor` type: shared storage read through a layout.
//!
//! A tensor is cheap to clone (an `Arc` bump plus the layout) and never
//! changes once made; ops return new tensors. Views (see `views.rs`) share the
//! storage; everything else allocates a fresh, contiguous buffer.

use std::borrow::Cow;
use std::sync::Arc;

use rayon::prelude::*;

use crate::backend;
use crate::dtype::{DType, Element};
use crate::error::{Result, TensorError};
use crate::layout::Layout;
use crate::shape::Shape;
use crate::storage::{CpuStorage, Storage};
use crate::Device;

/// Elementwise work below this many elements stays on one thread.
pub(crate) const PARALLEL_ELEMS: usize = 1 << 15;

#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    layout: Layout,
    device: Device,
}

impl Tensor {
    // ----- construction from parts ------------------------------------------

    pub(crate) fn from_storage(storage: CpuStorage, layout: Layout) -> Tensor {
        Tensor { storage: Arc::new(Storage::Cpu(storage)), layout, device: Device::Cpu }
    }

    /// A tensor over any storage (the CUDA backend makes device tensors).
    pub(crate) fn from_parts(storage: Storage, layout: Layout, device: Device) -> Tensor {
        Tensor { storage: Arc::new(storage), layout, device }
    }

    /// The shared storage, for the CUDA backend's in-place updates
    /// (`Arc::make_mut` copies first if it is shared).
    pub(crate) fn storage_arc_mut(&mut self) -> &mut Arc<Storage> {
        &mut self.storage
    }

    /// A dense tensor over `data`; the caller guarantees the length.
    pub(crate) fn from_contiguous<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Tensor {
        let shape = shape.into();
        debug_assert_eq!(data.len(), shape.numel());
        Tensor::from_storage(T::into_storage(data), Layout::contiguous(shape))
    }

    /// The same storage read through another layout (a view).
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout, device: self.device }
    }

    /// A tensor over `data` with `shape`; errors when the length is wrong.
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(TensorError::LengthMismatch { len: data.len(), numel: shape.numel(), shape });
        }
        Ok(Tensor::from_contiguous(data, shape))
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Tensor::from_contiguous(vec![value], ())
    }

    // ----- accessors ----------------------------------------------------------

    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.dims()
    }
    /// Size of one dimension; negative counts from the end.
    pub fn dim(&self, dim: isize) -> usize {
        self.dims()[self.layout.resolve(dim, "dim")]
    }
    pub fn rank(&self) -> usize {
        self.dims().len()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn device(&self) -> Device {
        self.device
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// True when both tensors read the same buffer (one is a view of the other).
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// The whole underlying buffer (not just this view's elements).
    pub fn storage_slice<T: Element>(&self) -> &[T] {
        T::slice(self.storage.cpu())
            .unwrap_or_else(|| panic!("tensor holds {} but {} was asked for", self.dtype(), T::DTYPE))
    }

    /// This tensor's elements in row-major order; borrowed when already dense.
    /// A GPU's values are copied to the host (which waits for the work
    /// queued before).
    pub fn contiguous_data<T: Element>(&self) -> Cow<'_, [T]> {
        if let Storage::Cuda(_) = *self.storage {
            return Cow::Owned(crate::cuda::host_vec::<T>(self));
        }
        let buf = self.storage_slice::<T>();
        if self.is_contiguous() {
            let start = self.layout.offset();
            Cow::Borrowed(&buf[start..start + self.numel()])
        } else {
            Cow::Owned(gather(&self.layout, buf))
        }
    }

    /// The elements in row-major order. Panics if `T` is not the dtype.
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        self.contiguous_data::<T>().into_owned()
    }

    /// The elements as f64, whatever the dtype.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        crate::with_type!(self.dtype(), T => self.contiguous_data::<T>().iter().map(|v| v.to_f64()).collect())
    }

    /// Rows of a 2-D tensor.
    pub fn to_vec2<T: Element>(&self) -> Vec<Vec<T>> {
        assert_eq!(self.rank(), 2, "to_vec2: tensor has shape {}", self.shape());
        let cols = self.dims()[1];
        self.to_vec::<T>().chunks(cols.max(1)).map(|c| c.to_vec()).collect()
    }

    /// The single value of a one-element tensor.
    pub fn item<T: Element>(&self) -> T {
        assert_eq!(self.numel(), 1, "item: tensor of shape {} has {} elements", self.shape(), self.numel());
        self.contiguous_data::<T>()[0]
    }

    /// The single value as f64, whatever the dtype.
    pub fn item_f64(&self) -> f64 {
        assert_eq!(self.numel(), 1, "item: tensor of shape {} has {} elements", self.shape(), self.numel());
        self.to_f64_vec()[0]
    }

    /// Mutable access to a dense buffer for in-place updates (optimizers).
    /// Copies first if the storage is shared or this is not a dense view of
    /// all of it, so no other tensor ever sees the change.
    pub fn data_mut<T: Element>(&mut self) -> &mut [T] {
        let whole = self.is_contiguous() && self.layout.offset() == 0 && self.storage.cpu().len() == self.numel();
        if !whole {
            *self = self.contiguous_copy();
        }
        let storage = Arc::make_mut(&mut self.storage);
        T::vec_mut(storage.cpu_mut())
            .unwrap_or_else(|| panic!("data_mut: tensor holds another dtype than {}", T::DTYPE))
    }

    /// A fresh dense copy (always allocates).
    pub fn contiguous_copy(&self) -> Tensor {
        backend::of(&[self]).contiguous_copy(self)
    }

    // ----- moving between dtypes and devices ----------------------------------

    /// Converts every element to `dtype` (floats to integers truncate toward
    /// zero, as `as` does). Returns `self` unchanged when the dtype matches.
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        backend::of(&[self]).to_dtype(self, dtype)
    }

    /// Copies the tensor to `device` (itself when already there). Moving to
    /// a GPU errors when there is none, or for float64, which has no device
    /// storage.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        match (self.device, device) {
            (from, to) if from == to => Ok(self.clone()),
            (Device::Cuda(_), Device::Cpu) => Ok(crate::cuda::to_cpu(self)),
            (_, Device::Cuda(ordinal)) => crate::cuda::to_cuda(self, ordinal),
            (Device::Cpu, Device::Cpu) => unreachable!("handled by the first arm"),
        }
    }

    // ----- elementwise machinery shared by the ops ---------------------------

    /// Applies `f` to every element, producing a dense tensor of dtype `U`.
    pub fn map<T: Element, U: Element>(&self, f: impl Fn(T) -> U + Sync + Send) -> Tensor {
        let src = self.contiguous_data::<T>();
        let out = map_slices(src.len(), |o, start| {
            for (o, &v) in o.iter_mut().zip(&src[start..]) {
                o.write(f(v));
            }
        });
        Tensor::from_contiguous(out, self.shape().clone())
    }
}

/// Elements per task of an elementwise op: large enough that scheduling
/// is noise, small enough to stay in cache and share out over the cores.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// A new dense buffer of `len` elements filled by `fill(chunk, start)`,
/// which must write every element of the chunk that starts at `start`
/// (the buffer is not zeroed first: that would be one more pass over
/// memory). Chunks run in parallel for large buffers; each is a plain loop
/// over slices, which the compiler vectorises (no per-element iterator
/// machinery as with a parallel `collect`).
pub(crate) fn map_slices<U: Element>(
    len: usize,
    fill: impl Fn(&mut [std::mem::MaybeUninit<U>], usize) + Sync + Send,
) -> Vec<U> {
    let mut out = crate::pool::take::<U>(len);
    let dst = &mut out.spare_capacity_mut()[..len];
    if len >= PARALLEL_ELEMS {
        dst.par_chunks_mut(ELEMENTWISE_CHUNK).enumerate().for_each(|(i, o)| fill(o, i * ELEMENTWISE_CHUNK));
    } else {
        fill(dst, 0);
    }
    // SAFETY: `fill` wrote every element of every chunk.
    unsafe { out.set_len(len) };
    out
}

/// The elements a strided layout describes, copied out in row-major order:
/// one row (last dimension) at a time, rows in parallel, and a plain slice
/// copy when a row's elements are adjacent (the common case of a permuted
/// or sliced view).
fn gather<T: Element>(layout: &crate::layout::Layout, buf: &[T]) -> Vec<T> {
    let numel = layout.shape().numel();
    let (n, stride) = layout.row();
    let rows = layout.row_offsets();
    let mut out = crate::pool::take::<T>(numel);
    if n == 0 || rows.is_empty() {
        return out;
    }
    let fill = |(row, dst): (usize, &mut [std::mem::MaybeUninit<T>])| {
        let start = rows[row];
        if stride == 1 {
            for (d, &v) in dst.iter_mut().zip(&buf[start..start + n]) {
                d.write(v);
            }
        } else {
            for (j, d) in dst.iter_mut().enumerate() {
                d.write(buf[start + j * stride]);
            }
        }
    };
    let dst = &mut out.spare_capacity_mut()[..numel];
    if numel >= PARALLEL_ELEMS {
        dst.par_chunks_mut(n).enumerate().for_each(fill);
    } else {
        dst.chunks_mut(n).enumerate().for_each(fill);
    }
    // SAFETY: the rows cover all numel elements and each was written above.
    unsafe { out.set_len(numel) };
    out
}
