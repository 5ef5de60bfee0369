//! Finding the CUDA libraries before touching them.
//!
//! The crate is built with cudarc's `dynamic-loading`: nothing links
//! against CUDA, and `libcuda.so.1` (the driver, which comes with the GPU's
//! kernel module), `libnvrtc.so.<major>` (the runtime compiler) and
//! `libcublas.so.<major>` are opened with `dlopen` on first use. When one
//! is missing, cudarc's first call into it panics. So every entry point
//! here asks `is_culib_present()` first, which only tries to open the
//! file, and turns "absent" into a [`CudaError`].
//!
//! Which file names are tried is fixed at build time by the CUDA version
//! feature (`cuda-13` tries `libnvrtc.so.13`, `cuda-12` `libnvrtc.so.12`),
//! and `LD_LIBRARY_PATH` decides where they are looked for.

use std::sync::OnceLock;

use super::error::{CudaError, Result};

/// The CUDA major version this build loads, from the cargo feature.
pub const CUDA_MAJOR: u32 = if cfg!(feature = "cuda-12") && !cfg!(feature = "cuda-13") { 12 } else { 13 };

/// The driver library is present (not that a GPU is).
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to dlopen the library; no symbol is called.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

/// The NVRTC runtime compiler is present.
pub fn nvrtc_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: as above.
    *PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() })
}

/// cuBLAS is present.
pub fn cublas_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: as above.
    *PRESENT.get_or_init(|| unsafe { cudarc::cublas::sys::is_culib_present() })
}

/// Ok when the driver library can be loaded.
pub fn require_driver() -> Result<()> {
    if driver_present() {
        Ok(())
    } else {
        Err(CudaError::NoDevice("libcuda.so.1 not found".into()))
    }
}

/// Ok when NVRTC can be loaded.
pub fn require_nvrtc() -> Result<()> {
    if nvrtc_present() {
        Ok(())
    } else {
        Err(CudaError::MissingLibrary { library: nvrtc_file(), hint: NVRTC_HINT })
    }
}

/// Ok when cuBLAS can be loaded.
pub fn require_cublas() -> Result<()> {
    if cublas_present() {
        Ok(())
    } else {
        Err(CudaError::MissingLibrary { library: cublas_file(), hint: CUBLAS_HINT })
    }
}

/// Everything a device needs: driver first (its absence is the common
/// case and has the clearest message), then the compiler and cuBLAS.
pub fn require_all() -> Result<()> {
    require_driver()?;
    require_nvrtc()?;
    require_cublas()
}

fn nvrtc_file() -> &'static str {
    if CUDA_MAJOR == 12 {
        "libnvrtc.so.12"
    } else {
        "libnvrtc.so.13"
    }
}

fn cublas_file() -> &'static str {
    if CUDA_MAJOR == 12 {
        "libcublas.so.12"
    } else {
        "libcublas.so.13"
    }
}

const NVRTC_HINT: &str = "install the CUDA toolkit or `pip install nvidia-cuda-nvrtc` \
    (for CUDA 12: nvidia-cuda-nvrtc-cu12) and put its lib folder on LD_LIBRARY_PATH";
const CUBLAS_HINT: &str = "install the CUDA toolkit or `pip install nvidia-cublas` \
    (for CUDA 12: nvidia-cublas-cu12) and put its lib folder on LD_LIBRARY_PATH";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_driver_is_an_error_not_a_panic() {
        // On a machine with a GPU this is Ok; without one it must be the
        // exact message the command line prints.
        match require_driver() {
            Ok(()) => assert!(driver_present()),
            Err(e) => assert_eq!(e.to_string(), "no CUDA device: libcuda.so.1 not found"),
        }
    }

    #[test]
    fn the_version_feature_names_the_library_files() {
        assert!(nvrtc_file().ends_with(&CUDA_MAJOR.to_string()));
        assert!(cublas_file().ends_with(&CUDA_MAJOR.to_string()));
    }
}
