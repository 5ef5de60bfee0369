//! In-place accumulation, `a += b`, without a new buffer.
//!
//! Gradients are sums: a weight used twice (GPT-2's tied embedding and
//! output head) receives one gradient per use, and the backward adds them.
//! `a.add(&b)` would allocate a third buffer of the same size (for the
//! embedding, 154 MB) on every step; `add_` writes into `a`'s buffer.
//! Tensors are values, so this is only done when nothing else holds that
//! buffer: a shared buffer is copied first (copy-on-write, `data_mut`), and
//! no other tensor ever sees the change.

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
}
