//! Reading PyTorch-made fixtures and comparing against them, for the
//! whole-model parity tests (`gpt2_parity`, `llama_parity`).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use scratchgpt::tensor::Tensor;

/// Every tensor of a fixture file by name (float32 and int64); `regenerate`
/// says which script writes it.
pub fn read_fixture(path: &Path, regenerate: &str) -> BTreeMap<String, Tensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); generate it with `python3 {regenerate}` \
             (needs `pip install torch transformers safetensors`)",
            path.display()
        )
    });
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let shape = view.shape().to_vec();
            let t = match view.dtype() {
                Dtype::F32 => Tensor::from_vec(
                    view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>(),
                    shape,
                ),
                Dtype::I64 => Tensor::from_vec(
                    view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>(),
                    shape,
                ),
                d => panic!("{}: {name} has dtype {d:?}; expected F32 or I64", path.display()),
            }
            .unwrap();
            (name, t)
        })
        .collect()
}

/// Checks |got − want| ≤ atol + rtol·|want| elementwise (NumPy's `allclose`)
/// and returns the largest absolute difference, for the log.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> f64 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let mut worst: Option<(usize, f64)> = None;
    let mut max_abs = 0.0f64;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let diff = (a - b).abs();
        max_abs = max_abs.max(diff);
        let excess = if diff.is_nan() { f64::INFINITY } else { diff - (atol + rtol * b.abs()) };
        if excess > 0.0 && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {} but PyTorch has {} (|diff| {:.3e} > atol {atol:e} + rtol {rtol:e}·|want|)",
            g[i],
            w[i],
            (g[i] - w[i]).abs()
        );
    }
    max_abs
}

pub fn assert_scalar_close(what: &str, got: f64, want: f64, tol: f64) -> f64 {
    let diff = (got - want).abs();
    assert!(diff <= tol, "{what}: {got} but PyTorch has {want} (|diff| {diff:.3e} > {tol:e})");
    diff
}
