//! Devices: where a tensor's storage lives and where its ops run, and the
//! few controls a program needs over them (is the GPU usable, wait for it,
//! its name, TF32 products), so that nothing above this crate has to name
//! the CUDA backend.

use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
}

impl Device {
    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }

    /// Checks that the device can be used: for a GPU, that the driver, the
    /// GPU and its ordinal exist, compiling every kernel now so that a
    /// missing compiler shows up here rather than in the middle of a run.
    /// The CPU is always available.
    pub fn ensure_available(self) -> Result<()> {
        crate::cuda::ensure_available(self)
    }

    /// Waits until every op queued on the device has finished (a no-op for
    /// the CPU): GPU ops return as soon as their kernels are queued, so a
    /// timer must synchronise before it stops.
    pub fn synchronize(self) -> Result<()> {
        crate::cuda::synchronize(self)
    }

    /// The hardware's name: `cpu`, or the GPU's, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(self) -> Result<String> {
        crate::cuda::device_name(self)
    }

    /// Number of GPUs on this machine (0 when there is no driver).
    pub fn cuda_count() -> usize {
        crate::cuda::device_count()
    }

    /// Parses the command line's spelling: `cpu`, `cuda`, `cuda:1`.
    pub fn parse(s: &str) -> Option<Device> {
        match s {
            "cpu" => Some(Device::Cpu),
            "cuda" => Some(Device::Cuda(0)),
            _ => s.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Device::Cuda),
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Lets f32 matrix products on a GPU use TF32 tensor cores (10 mantissa
/// bits in, f32 accumulation): several times faster, and what PyTorch's
/// `allow_tf32` does. One process-wide setting; off by default.
pub fn set_tf32(on: bool) {
    crate::cuda::set_tf32(on)
}

/// Whether [`set_tf32`] is on.
pub fn tf32_enabled() -> bool {
    crate::cuda::tf32_enabled()
}

/// The CPU's f32 arithmetic peak in FLOP/s, measured on the threads of the
/// current rayon pool running vector FMAs together (`kernels::cpu::peak`);
/// `None` on a CPU without AVX2+FMA or AVX-512.
pub fn cpu_peak_flops() -> Option<f64> {
    kernels::cpu::peak::fma_peak_flops()
}

/// Bytes per second the current rayon pool's threads read from a buffer of
/// `bytes`, summing it (`kernels::cpu::peak::read_bandwidth`).
pub fn cpu_read_bandwidth(bytes: usize) -> f64 {
    kernels::cpu::peak::read_bandwidth(bytes)
}
