//! Every `.cu` source compiles with NVRTC, on any machine that has the
//! NVRTC library, GPU or not.
//!
//! For each source this compiles PTX for compute_80 (A100) and compute_90
//! (H100), checks that every kernel the Rust side launches is an entry
//! point of the PTX, and builds an sm_90 cubin, which is what the backend
//! loads at run time. CI installs NVRTC from PyPI (`.ci/run`); where the
//! library is missing the test says so and passes, since there is nothing
//! to compile with. `SCRATCHGPT_REQUIRE_NVRTC=1` turns that skip into a
//! failure, for CI runs that must not skip it.

use kernels::cuda::compile::{compile, nvrtc_version, ptx_entry_points, Target};
use kernels::cuda::libraries::nvrtc_present;
use kernels::cuda::sources::ALL;

fn nvrtc_or_skip() -> bool {
    if nvrtc_present() {
        return true;
    }
    let message = "skipped: NVRTC (libnvrtc.so.13) not found; `pip install nvidia-cuda-nvrtc` and put \
                   site-packages/nvidia/cu13/lib on LD_LIBRARY_PATH to run it";
    if std::env::var("SCRATCHGPT_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
        panic!("{message}");
    }
    eprintln!("{message}");
    false
}

#[test]
fn every_kernel_source_compiles_for_sm80_and_sm90() {
    if !nvrtc_or_skip() {
        return;
    }
    let (major, minor) = nvrtc_version().expect("NVRTC reports its version");
    eprintln!("NVRTC {major}.{minor}");
    let mut failures = Vec::new();
    let mut compiled = 0;
    for source in ALL {
        for cc in [80, 90] {
            let start = std::time::Instant::now();
            let result = compile(source, Target::Ptx(cc));
            eprintln!("{} for compute_{cc}: {:.1} s", source.file, start.elapsed().as_secs_f64());
            match result {
                Ok(ptx) => {
                    compiled += 1;
                    let entries = ptx_entry_points(&ptx);
                    for name in (source.kernels)() {
                        if !entries.contains(&name) {
                            failures.push(format!("{} (compute_{cc}): no kernel {name}", source.file));
                        }
                    }
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
    assert_eq!(compiled, ALL.len() * 2);
}

#[test]
fn every_kernel_source_builds_an_sm90_cubin() {
    if !nvrtc_or_skip() {
        return;
    }
    for source in ALL {
        let cubin = compile(source, Target::Cubin(90)).unwrap_or_else(|e| panic!("{e}"));
        // A cubin is an ELF file.
        assert_eq!(&cubin[..4], b"\x7fELF", "{} did not produce a cubin", source.file);
    }
}

#[test]
fn a_broken_source_reports_the_compiler_log() {
    if !nvrtc_or_skip() {
        return;
    }
    static BROKEN: kernels::cuda::sources::KernelSource = kernels::cuda::sources::KernelSource {
        file: "broken.cu",
        code: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        kernels: Vec::new,
    };
    let err = compile(&BROKEN, Target::Ptx(80)).unwrap_err().to_string();
    assert!(err.contains("broken.cu") && err.contains("undefined_name"), "{err}");
}
