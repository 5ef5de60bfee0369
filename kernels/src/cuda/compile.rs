//! NVRTC: CUDA C++ source to GPU code at run time.
//!
//! The kernels ship as source text (the `.cu` files beside this one), and
//! NVRTC, NVIDIA's compiler as a library, turns them into device code when
//! a process first needs them. Two outputs matter:
//!
//! - **PTX** for a *virtual* architecture (`compute_80`): NVIDIA's portable
//!   assembly, which the driver compiles further for whatever GPU it runs
//!   on. The build-check test makes PTX for compute_80 (A100) and
//!   compute_90 (H100) on machines with no GPU at all.
//! - **CUBIN** for a *real* architecture (`sm_90`): finished machine code
//!   for one GPU generation. This is what the backend loads. A cubin needs
//!   no JIT step in the driver, and so it also works when NVRTC is a newer
//!   minor release than the driver (CUDA's minor-version compatibility
//!   covers machine code, not PTX: a 13.5 PTX file is refused by a 13.0
//!   driver).
//!
//! Every option is spelled out here so a compile in a test and one on a GPU
//! see the same flags.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result, sys};

use super::error::{CudaError, Result};
use super::libraries::require_nvrtc;
use super::sources::KernelSource;

/// What NVRTC should produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// PTX for the virtual architecture `compute_<cc>` (e.g. 90).
    Ptx(u32),
    /// A cubin for the real architecture `sm_<cc>`.
    Cubin(u32),
}

impl Target {
    /// The value of `--gpu-architecture`.
    pub fn arch(self) -> String {
        match self {
            Target::Ptx(cc) => format!("compute_{cc}"),
            Target::Cubin(cc) => format!("sm_{cc}"),
        }
    }
}

/// The compute capability (major, minor) as NVRTC spells it: 9.0 → 90.
pub fn capability_number(major: i32, minor: i32) -> u32 {
    (major.max(0) as u32) * 10 + minor.max(0) as u32
}

/// The full text NVRTC compiles: the shared prelude, then the source.
pub fn full_source(source: &KernelSource) -> String {
    format!("{}\n#line 1 \"{}\"\n{}", super::sources::PRELUDE, source.file, source.code)
}

/// NVRTC's options: the architecture, C++17, and line info so profilers
/// can point at source lines. Precise division and square roots stay on
/// (NVRTC's default), so results track the CPU's closely.
pub fn options(target: Target) -> Vec<String> {
    vec![format!("--gpu-architecture={}", target.arch()), "--std=c++17".into(), "--generate-line-info".into()]
}

/// Compiles one source; returns PTX text (NUL-terminated) or cubin bytes.
pub fn compile(source: &KernelSource, target: Target) -> Result<Vec<u8>> {
    require_nvrtc()?;
    let text = CString::new(full_source(source))
        .map_err(|_| CudaError::Unsupported(format!("{} contains a NUL byte", source.file)))?;
    let name = CString::new(source.file).expect("file names have no NUL");
    let compile_error = |message: String, log: String| CudaError::Compile {
        source_name: source.file,
        arch: target.arch(),
        message,
        log,
    };
    let program =
        result::create_program(&text, Some(&name)).map_err(|e| compile_error(format!("{e:?}"), String::new()))?;
    let program = Program(program);
    // SAFETY: `program` was created above and is destroyed only by Drop.
    let compiled = unsafe { result::compile_program(program.0, &options(target)) };
    if let Err(e) = compiled {
        return Err(compile_error(format!("{e:?}"), program.log()));
    }
    let code = match target {
        Target::Ptx(_) => {
            // SAFETY: the program compiled successfully.
            let ptx =
                unsafe { result::get_ptx(program.0) }.map_err(|e| compile_error(format!("{e:?}"), String::new()))?;
            ptx.into_iter().map(|c| c as u8).collect()
        }
        Target::Cubin(_) => program.cubin().map_err(|e| compile_error(e, String::new()))?,
    };
    Ok(code)
}

/// NVRTC's own version, e.g. (13, 0).
pub fn nvrtc_version() -> Result<(i32, i32)> {
    require_nvrtc()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loaded (checked above); both pointers are valid.
    let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    if status != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(CudaError::Unsupported(format!("nvrtcVersion failed: {status:?}")));
    }
    Ok((major, minor))
}

/// Owns an `nvrtcProgram` and destroys it on every exit path.
struct Program(sys::nvrtcProgram);

impl Program {
    fn log(&self) -> String {
        // SAFETY: the program is alive; the log is a NUL-terminated string.
        match unsafe { result::get_program_log(self.0) } {
            Ok(raw) => {
                let bytes: Vec<u8> = raw.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Err(e) => format!("(no log: {e:?})"),
        }
    }

    fn cubin(&self) -> std::result::Result<Vec<u8>, String> {
        let mut size = 0usize;
        // SAFETY: the program compiled for a real architecture; `size` is a
        // valid out-pointer.
        let status = unsafe { sys::nvrtcGetCUBINSize(self.0, &mut size) };
        if status != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(format!("nvrtcGetCUBINSize: {status:?}"));
        }
        let mut cubin = vec![0u8; size];
        // SAFETY: `cubin` has the `size` bytes NVRTC asked for.
        let status = unsafe { sys::nvrtcGetCUBIN(self.0, cubin.as_mut_ptr() as *mut c_char) };
        if status != sys::nvrtcResult::NVRTC_SUCCESS {
            return Err(format!("nvrtcGetCUBIN: {status:?}"));
        }
        Ok(cubin)
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: created by create_program, destroyed exactly once here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

/// The kernel names (`extern "C" __global__`) a PTX text defines, so a
/// test can check every name the Rust side launches really exists.
pub fn ptx_entry_points(ptx: &[u8]) -> Vec<String> {
    let text = CStr::from_bytes_until_nul(ptx)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(ptx).into_owned());
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix(".visible .entry ")?;
            Some(rest.split(['(', ' ']).next()?.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_are_spelled_as_nvrtc_wants() {
        assert_eq!(Target::Ptx(80).arch(), "compute_80");
        assert_eq!(Target::Cubin(90).arch(), "sm_90");
        assert_eq!(capability_number(9, 0), 90);
        assert_eq!(capability_number(8, 6), 86);
        assert!(options(Target::Ptx(90)).contains(&"--gpu-architecture=compute_90".to_string()));
    }

    #[test]
    fn entry_points_are_read_from_ptx() {
        let ptx = b".version 8.0\n.visible .entry add_f32(\n\t.param .u64 a\n)\n.visible .entry fill_b32(\n\0";
        assert_eq!(ptx_entry_points(ptx), vec!["add_f32".to_string(), "fill_b32".to_string()]);
    }
}
