//! What the GPU tests share: the device, random inputs, and comparisons.
//!
//! Every check runs one piece of code on a CPU tensor and on the same
//! values on the GPU, then compares element by element. Output buffers on
//! the GPU are poisoned (filled with NaN bytes) before every kernel writes
//! them, so an element a kernel forgets shows up as a NaN, not as a
//! leftover that happens to be right.

#![allow(dead_code)] // each test file uses its own subset

use scratchgpt::tensor::{DType, Device, Generator, Tensor};

/// Whether a test must stop here because there is no GPU: prints the
/// reason and returns true. These tests are `#[ignore]`d, so this is reached
/// only with `--ignored`: someone checking a bundle on a machine without a
/// GPU sees every test skip with the driver's reason. The GPU scripts set
/// `SCRATCHGPT_REQUIRE_GPU=1`, which makes a missing device a failure.
pub fn skip_without_gpu() -> bool {
    let Err(e) = Device::Cuda(0).ensure_available() else {
        return false;
    };
    let message = format!("skipped: the GPU tests need a CUDA device ({e})");
    if std::env::var("SCRATCHGPT_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("{message}");
    }
    eprintln!("{message}");
    true
}

/// The GPU under test (after `skip_without_gpu`), with output poisoning on.
pub fn gpu() -> Device {
    let device = Device::Cuda(0);
    if let Err(e) = device.ensure_available() {
        panic!("the GPU tests need a CUDA device: {e}");
    }
    scratchgpt::tensor::cuda::set_poison_outputs(true);
    device
}

/// A random tensor with no element near zero (|x| ≥ 0.1), so relative
/// comparisons stay meaningful and a zero output is never right by luck.
pub fn nonzero(shape: &[usize], seed: u64) -> Tensor {
    let mut g = Generator::seed(seed);
    let x = Tensor::randn(shape.to_vec(), &mut g);
    let sign =
        x.compare_scalar(0.0, scratchgpt::tensor::CmpOp::Ge).to_dtype(DType::F32).mul_scalar(2.0).sub_scalar(1.0);
    x.add(&sign.mul_scalar(0.1))
}

/// Uniform in [low, high).
pub fn uniform(shape: &[usize], low: f64, high: f64, seed: u64) -> Tensor {
    Tensor::uniform(shape.to_vec(), low, high, DType::F32, &mut Generator::seed(seed))
}

pub fn on(t: &Tensor, device: Device) -> Tensor {
    t.to_device(device).expect("copy to the device")
}

/// How far a GPU element may be from the CPU's: |got − want| ≤ atol + rtol·|want|,
/// element by element. `rtol` is the precision of the format; `atol` is
/// the rounding of the terms an element is computed from, in the units of
/// the test inputs (`nonzero` and `uniform` give values of size about 1),
/// so an element that is a small difference of larger terms may differ by
/// that much whatever its own size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Tolerance {
    /// For an element that sums `n` products or terms of unit size (a dot
    /// product, a reduction): the GPU adds them in another order, and the
    /// rounding of a sum of `n` terms grows about like √n.
    pub fn summing(self, n: usize) -> Tolerance {
        Tolerance { atol: self.atol * (n as f64).sqrt(), rtol: self.rtol }
    }

    /// Both bounds `k` times wider (several roundings in a row).
    pub fn times(self, k: f64) -> Tolerance {
        Tolerance { atol: self.atol * k, rtol: self.rtol * k }
    }

    /// A tolerance whose absolute part is `rtol` of the largest finite
    /// |want|: for whole-model results (logits, gradients, parameters after
    /// training) whose units are the model's, not the inputs'. It checks
    /// small elements only to the scale of the largest, so use it only
    /// where that is the honest bound.
    pub fn of_scale(want: &Tensor, rtol: f64) -> Tolerance {
        let scale = want.to_f64_vec().iter().fold(0.0f64, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
        Tolerance { atol: rtol * scale, rtol }
    }

    /// Whether `got` is within this tolerance of `want`. NaN matches only
    /// NaN and an infinity only itself (rtol·∞ would let anything pass).
    pub fn accepts(self, want: f64, got: f64) -> bool {
        if want == got || want.is_nan() && got.is_nan() {
            return true;
        }
        want.is_finite() && (got - want).abs() <= self.atol + self.rtol * want.abs()
    }

    /// The first element of `got` this tolerance rejects, as (index, want, got).
    pub fn first_rejected(self, want: &[f64], got: &[f64]) -> Option<(usize, f64, f64)> {
        assert_eq!(want.len(), got.len(), "compared slices differ in length");
        want.iter().zip(got).enumerate().find(|(_, (&w, &g))| !self.accepts(w, g)).map(|(i, (&w, &g))| (i, w, g))
    }
}

/// float32 on inputs of size about 1: 1e-5 relative, as the parity tests use,
/// and 1e-5 absolute for the rounding of the terms.
pub const F32: Tolerance = Tolerance { atol: 1e-5, rtol: 1e-5 };
/// bfloat16 keeps 8 significant bits: one unit in the last place is 2⁻⁸
/// relative, and an op may round differently once; the terms of an element
/// are rounded as coarsely.
pub const BF16: Tolerance = Tolerance { atol: 1.0 / 128.0, rtol: 1.0 / 128.0 };

/// Asserts `gpu` equals `cpu` in shape and dtype, and element by element
/// within `tol` (see [`Tolerance`]).
pub fn assert_close(what: &str, cpu: &Tensor, gpu: &Tensor, tol: Tolerance) {
    assert!(gpu.device().is_cuda(), "{what}: the GPU result is on {}", gpu.device());
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes differ");
    assert_eq!(cpu.dtype(), gpu.dtype(), "{what}: dtypes differ");
    if let Some((i, want, got)) = tol.first_rejected(&cpu.to_f64_vec(), &gpu.to_f64_vec()) {
        let allowed = tol.atol + tol.rtol * want.abs();
        panic!("{what}: element {i}: cpu {want} gpu {got} (|Δ| {:e} > {allowed:e})", (got - want).abs());
    }
}

/// Exact equality, for integer results and data movement.
pub fn assert_same(what: &str, cpu: &Tensor, gpu: &Tensor) {
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes differ");
    assert_eq!(cpu.dtype(), gpu.dtype(), "{what}: dtypes differ");
    let (c, g) = (cpu.to_f64_vec(), gpu.to_f64_vec());
    for (i, (a, b)) in c.iter().zip(&g).enumerate() {
        assert!(a == b || a.is_nan() && b.is_nan(), "{what}: element {i}: cpu {a} gpu {b}");
    }
}
