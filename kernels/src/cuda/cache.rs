//! Compiled kernels kept on disk between runs.
//!
//! NVRTC takes seconds per source (the flash-attention kernels the
//! longest), and every process that uses the GPU needs all of them. So a
//! compiled cubin is saved in the user's cache folder
//! (`$SCRATCHGPT_CACHE_DIR`, else `$XDG_CACHE_HOME/scratchgpt`, else
//! `~/.cache/scratchgpt`, under `cuda-kernels/`) and reused by the next
//! process. The file name carries a hash of everything that decides the
//! result: the full source text, the compiler options, the target
//! architecture and NVRTC's version, so an edited kernel or another GPU
//! never picks up a stale file. The cache is a convenience: when the folder
//! cannot be read or written, kernels are simply compiled.

use std::path::{Path, PathBuf};

use super::compile::{compile, full_source, nvrtc_version, options, Target};
use super::error::Result;
use super::sources::KernelSource;

/// Where compiled kernels are kept, if there is a home for them.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = env("SCRATCHGPT_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("scratchgpt")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("scratchgpt")))?;
    Some(base.join("cuda-kernels"))
}

/// 64-bit FNV-1a: a small, stable hash (the same on every run and
/// platform, unlike std's randomly seeded one).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate the parts, so ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The cache file name for one compilation.
pub fn file_name(source: &KernelSource, target: Target, nvrtc: (i32, i32)) -> String {
    let text = full_source(source);
    let opts = options(target).join(" ");
    let version = format!("{}.{}", nvrtc.0, nvrtc.1);
    let hash = fnv1a(&[text.as_bytes(), opts.as_bytes(), version.as_bytes()]);
    let ext = match target {
        Target::Ptx(_) => "ptx",
        Target::Cubin(_) => "cubin",
    };
    format!("{}-{}-{hash:016x}.{ext}", source.file.trim_end_matches(".cu"), target.arch())
}

/// `compile`, through the disk cache.
pub fn compile_cached(source: &KernelSource, target: Target) -> Result<Vec<u8>> {
    let Some(dir) = cache_dir() else { return compile(source, target) };
    let path = dir.join(file_name(source, target, nvrtc_version()?));
    if let Some(code) = read_valid(&path, target) {
        return Ok(code);
    }
    let code = compile(source, target)?;
    store(&path, &code);
    Ok(code)
}

/// A cached file, if it is there and looks like what `target` produces.
fn read_valid(path: &Path, target: Target) -> Option<Vec<u8>> {
    let code = std::fs::read(path).ok()?;
    let ok = match target {
        Target::Cubin(_) => code.starts_with(b"\x7fELF"),
        Target::Ptx(_) => code.ends_with(b"\0"),
    };
    ok.then_some(code)
}

/// Writes through a temporary name and a rename, so a reader never sees
/// half a file; failures only mean the next run compiles again.
fn store(path: &Path, code: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, code).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::sources::{COPY, GELU};

    #[test]
    fn names_change_with_everything_that_changes_the_code() {
        let base = file_name(&COPY, Target::Cubin(90), (13, 0));
        assert!(base.starts_with("copy-sm_90-") && base.ends_with(".cubin"), "{base}");
        assert_eq!(base, file_name(&COPY, Target::Cubin(90), (13, 0)), "stable");
        assert_ne!(base, file_name(&COPY, Target::Cubin(80), (13, 0)));
        assert_ne!(base, file_name(&COPY, Target::Cubin(90), (13, 1)));
        assert_ne!(base, file_name(&GELU, Target::Cubin(90), (13, 0)));
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn a_damaged_file_is_not_used() {
        let dir = std::env::temp_dir().join(format!("scratchgpt-kernel-cache-{}", std::process::id()));
        let path = dir.join("x.cubin");
        store(&path, b"not a cubin");
        assert_eq!(read_valid(&path, Target::Cubin(90)), None);
        store(&path, b"\x7fELF....");
        assert_eq!(read_valid(&path, Target::Cubin(90)).as_deref(), Some(&b"\x7fELF...."[..]));
        let _ = std::fs::remove_dir_all(dir);
    }
}
