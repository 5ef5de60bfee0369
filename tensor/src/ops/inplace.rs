//! In-place updates without a new buffer: accumulating, `a += b`, and
//! writing a window.
//!
//! Gradients are sums: a weight used twice (GPT-2's tied embedding and
//! output head) receives one gradient per use, and the backward adds them.
//! `a.add(&b)` would allocate a third buffer of the same size (for the
//! embedding, 154 MB) on every step; `add_` writes into `a`'s buffer.
//! Likewise a KV cache writes each new token's keys into the free rows of
//! its buffer (`write_window_`) instead of concatenating a new one.
//! Tensors are values, so this is only done when nothing else holds that
//! buffer: a shared buffer is copied first (copy-on-write, `data_mut`), and
//! no other tensor ever sees the change. With one operand on a GPU, the
//! update runs there, and a destination on the host moves there first.

use crate::backend;
use crate::tensor::Tensor;

impl Tensor {
    /// self += other, for tensors of the same shape and dtype
    /// (`torch.Tensor.add_`).
    pub fn add_(&mut self, other: &Tensor) {
        assert_eq!(self.shape(), other.shape(), "add_: shapes {} and {} differ", self.shape(), other.shape());
        assert_eq!(self.dtype(), other.dtype(), "add_: dtypes {} and {} differ", self.dtype(), other.dtype());
        backend::of(&[&*self, other]).add_in_place(self, other)
    }

    /// Writes `src` into positions `start..start + len` of `dim` of this
    /// dense tensor, in place, where `src` has this tensor's shape but `len`
    /// along `dim` (`self.narrow(dim, start, len).copy_(src)` in PyTorch):
    /// a KV cache appending a token's keys to its `[B, H, capacity, D]`
    /// buffer. If another tensor shares the buffer, it is copied first, so
    /// the other tensor never sees the write.
    pub fn write_window_(&mut self, dim: isize, start: usize, src: &Tensor) {
        let d = self.layout().resolve(dim, "write_window_");
        assert!(
            self.is_contiguous() && self.layout().offset() == 0,
            "write_window_: the destination must be dense, got strides {:?} at offset {}",
            self.strides(),
            self.layout().offset()
        );
        assert_eq!(src.dtype(), self.dtype(), "write_window_: dtypes {} and {} differ", src.dtype(), self.dtype());
        let fits = src.rank() == self.rank()
            && (0..self.rank()).all(|i| i == d || src.dims()[i] == self.dims()[i])
            && start + src.dims()[d] <= self.dims()[d];
        assert!(
            fits,
            "write_window_: source {} does not fit positions {start}.. of dimension {d} of {}",
            src.shape(),
            self.shape()
        );
        backend::of(&[&*self, src]).write_window(self, d, start, src)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn adds_in_place_and_never_changes_a_shared_buffer() {
        let mut a = Tensor::new([1.0f32, 2.0, 3.0]).unwrap();
        let alias = a.clone();
        a.add_(&Tensor::new([10.0f32, 20.0, 30.0]).unwrap());
        assert_eq!(a.to_vec::<f32>(), vec![11.0, 22.0, 33.0]);
        assert_eq!(alias.to_vec::<f32>(), vec![1.0, 2.0, 3.0]);
        // A transposed view is made dense first.
        let mut t = Tensor::new([[1.0f32, 2.0], [3.0, 4.0]]).unwrap().t();
        t.add_(&Tensor::new([[1.0f32, 1.0], [1.0, 1.0]]).unwrap());
        assert_eq!(t.to_vec::<f32>(), vec![2.0, 4.0, 3.0, 5.0]);
    }

    #[test]
    fn writes_a_window_in_place_and_never_changes_a_shared_buffer() {
        let mut g = Generator::seed(9);
        let start = Tensor::randn([2, 3, 6, 4], &mut g);
        // A non-dense source: positions 2..4 read through a transpose.
        let src = Tensor::randn([2, 3, 4, 2], &mut g).transpose(2, 3);
        let mut buf = start.clone();
        buf.write_window_(2, 3, &src);
        let expected = Tensor::cat(&[start.narrow(2, 0, 3), src.clone(), start.narrow(2, 5, 1)], 2);
        assert_eq!(buf.to_vec::<f32>(), expected.to_vec::<f32>());
        assert_ne!(start.to_vec::<f32>(), buf.to_vec::<f32>());
        // Along the last dimension too, and into a fresh buffer.
        let mut zeros = Tensor::zeros_on([2, 5], DType::F32, Device::Cpu);
        zeros.write_window_(-1, 1, &Tensor::ones([2, 2], DType::F32));
        assert_eq!(zeros.to_vec::<f32>(), vec![0., 1., 1., 0., 0., 0., 1., 1., 0., 0.]);
    }

    #[test]
    #[should_panic(
        expected = "write_window_: source [2, 3, 2, 4] does not fit positions 5.. of dimension 2 of [2, 3, 6, 4]"
    )]
    fn a_window_past_the_end_panics_with_both_shapes() {
        let mut buf = Tensor::zeros([2, 3, 6, 4], DType::F32);
        buf.write_window_(2, 5, &Tensor::zeros([2, 3, 2, 4], DType::F32));
    }
}
