//! Rotary position embedding at the tensor level.
//!
//! x is laid out `[.., T, H, D]` (a projection's `[B, T, H·D]` output viewed
//! per head, possibly a strided view); row t of the tables (built by
//! `RopeConfig::tables` for positions offset .. offset + T) rotates every
//! head at position t. The tables are `[T, R/2]`: the first R ≤ D
//! elements of each head turn (R < D is partial rotary, Phi-3's), element
//! i paired with i + R/2 (transformers' rotate_half), and the other D − R
//! pass through. The backward applies the transpose: the turn by the
//! negated angle (with tables scaled by a constant, as longrope's are, the
//! transpose is still that), pass-through elements' gradient unchanged,
//! so only x receives a gradient. The output is dense `[.., T, H, D]`. The
//! arithmetic is in `kernels::cpu::rope` and `rope.cu`.

use crate::backend;
use crate::rope::RopeTables;
use crate::tensor::Tensor;

impl Tensor {
    /// x rotated by the tables' angles, position t of x by row t.
    pub fn rope(&self, tables: &RopeTables) -> Tensor {
        check_rope(self, tables, "rope");
        backend::of(&[self, &tables.cos, &tables.sin]).rope(self, &tables.cos, &tables.sin, false)
    }

    /// The backward of [`Tensor::rope`]: dy rotated by the negated angles.
    pub fn rope_backward(dy: &Tensor, tables: &RopeTables) -> Tensor {
        check_rope(dy, tables, "rope_backward");
        backend::of(&[dy, &tables.cos, &tables.sin]).rope(dy, &tables.cos, &tables.sin, true)
    }
}

fn check_rope(x: &Tensor, tables: &RopeTables, op: &str) {
    assert!(x.dtype().is_float(), "{op}: needs a float tensor, got {}", x.dtype());
    assert!(x.rank() >= 3, "{op}: needs x laid out [.., T, H, D], got {}", x.shape());
    let (t, d) = (x.dim(-3), x.dim(-1));
    let cos = tables.cos.dims();
    assert!(
        cos.len() == 2 && cos[0] == t && 2 * cos[1] <= d,
        "{op}: tables of shape {} for x {} (need [T, R/2] with R <= D)",
        tables.cos.shape(),
        x.shape()
    );
    assert_eq!(
        tables.sin.dims(),
        tables.cos.dims(),
        "{op}: sin {} and cos {} differ",
        tables.sin.shape(),
        tables.cos.shape()
    );
}

#[cfg(test)]
mod tests {
    use crate::rope::RopeConfig;
    use crate::*;

    /// Position 1 with one pair at one radian per token: (1, 0) turns to
    /// (cos 1, sin 1); the transposed view gives the same as its copy.
    #[test]
    fn turns_each_pair_by_its_positions_angle() {
        let tables = RopeConfig::new(10000.0, 2).tables(0, 2);
        let x = Tensor::new_as([[[[1.0, 0.0]]], [[[1.0, 0.0]]]], DType::F64).unwrap().reshape(&[1, 2, 1, 2]);
        let y = x.rope(&tables).to_vec::<f64>();
        assert_eq!(&y[..2], &[1.0, 0.0]);
        assert!((y[2] - (1f32.cos() as f64)).abs() < 1e-7 && (y[3] - (1f32.sin() as f64)).abs() < 1e-7);
        let back = Tensor::rope_backward(&x.rope(&tables), &tables).to_vec::<f64>();
        assert!(back.iter().zip(x.to_vec::<f64>()).all(|(a, b)| (a - b).abs() < 1e-6));
    }

    /// Tables for 2 of a head's 4 elements: elements 2 and 3 pass through.
    #[test]
    fn narrower_tables_turn_only_the_leading_part() {
        let tables = RopeConfig::new(10000.0, 2).tables(0, 2);
        let x = Tensor::new_as([[[[1.0, 0.0, 5.0, 6.0]]], [[[1.0, 0.0, 5.0, 6.0]]]], DType::F64).unwrap();
        let y = x.reshape(&[1, 2, 1, 4]).rope(&tables).to_vec::<f64>();
        assert_eq!(&y[..4], &[1.0, 0.0, 5.0, 6.0]);
        assert!((y[4] - (1f32.cos() as f64)).abs() < 1e-7 && (y[5] - (1f32.sin() as f64)).abs() < 1e-7);
        assert_eq!(&y[6..], &[5.0, 6.0]);
    }

    #[test]
    fn a_strided_view_gives_what_its_copy_gives() {
        let tables = RopeConfig::new(10000.0, 4).tables(5, 3);
        let heads_first = Tensor::arange(0, 2 * 2 * 3 * 4).reshape(&[2, 2, 3, 4]).to_dtype(DType::F32);
        let view = heads_first.transpose(1, 2); // [B, T, H, D], not contiguous
        assert!(!view.is_contiguous());
        assert_eq!(view.rope(&tables).to_vec::<f32>(), view.contiguous().rope(&tables).to_vec::<f32>());
    }
}
