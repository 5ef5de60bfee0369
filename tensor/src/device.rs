//! Devices: where a tensor's storage lives and where its ops run.

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
