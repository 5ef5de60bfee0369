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

/// Asserts `gpu` equals `cpu` in shape and dtype, and elementwise within
/// `rtol` relative to the element and to the tensor's scale:
/// |g − c| ≤ rtol · (|c| + max|c|). The second term is an absolute
/// tolerance in the tensor's own units: an element that is a small
/// difference of large terms (a dot product that nearly cancels, a
/// derivative near its zero) may differ by the rounding of those terms,
/// which depends on the order a GPU adds them in.
pub fn assert_close(what: &str, cpu: &Tensor, gpu: &Tensor, rtol: f64) {
    assert!(gpu.device().is_cuda(), "{what}: the GPU result is on {}", gpu.device());
    assert_eq!(cpu.shape(), gpu.shape(), "{what}: shapes differ");
    assert_eq!(cpu.dtype(), gpu.dtype(), "{what}: dtypes differ");
    let (c, g) = (cpu.to_f64_vec(), gpu.to_f64_vec());
    let scale = c.iter().fold(0.0f64, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
    for (i, (&a, &b)) in c.iter().zip(&g).enumerate() {
        if a.is_nan() && b.is_nan() || a == b {
            continue;
        }
        let err = (a - b).abs();
        let allowed = rtol * (a.abs() + scale);
        assert!(err <= allowed, "{what}: element {i}: cpu {a} gpu {b} (|Δ| {err:e} > {allowed:e})");
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

/// float32: 1e-5 relative, as the parity tests use.
pub const F32: f64 = 1e-5;
/// bfloat16 keeps 8 significant bits: one unit in the last place is 2⁻⁸
/// relative, and an op may round differently once.
pub const BF16: f64 = 1.0 / 128.0;
