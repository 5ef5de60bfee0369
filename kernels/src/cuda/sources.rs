//! The kernel sources, compiled into the binary as text.
//!
//! Each `.cu` file beside this one is one family of kernels with a comment
//! at its top explaining the idea; `include_str!` embeds it, so the binary
//! carries its own kernels and needs no files at run time. NVRTC compiles
//! `PRELUDE` + a source the first time a kernel from it is launched
//! (`device.rs`), and the build check compiles all of them for sm_80 and
//! sm_90 (`tests/cuda_compile.rs` in the kernels crate).

/// One `.cu` file.
#[derive(Debug)]
pub struct KernelSource {
    /// File name, used in compiler messages and as the module's cache key.
    pub file: &'static str,
    pub code: &'static str,
    /// The `extern "C"` kernels the Rust side launches from this file, so a
    /// test can check that each exists in the compiled code.
    pub kernels: fn() -> Vec<String>,
}

/// Shared by every source: half-precision types, strided layouts, block
/// reductions.
pub const PRELUDE: &str = include_str!("prelude.cuh");

/// The dtype suffixes kernels are instantiated for.
pub const FLOATS: [&str; 3] = ["f32", "f16", "bf16"];
pub const ALL_DTYPES: [&str; 5] = ["f32", "f16", "bf16", "i64", "i8"];
/// Element widths for the dtype-blind copies.
pub const WIDTHS: [&str; 4] = ["b8", "b16", "b32", "b64"];

fn names(prefixes: &[&str], suffixes: &[&str]) -> Vec<String> {
    prefixes.iter().flat_map(|p| suffixes.iter().map(move |s| format!("{p}_{s}"))).collect()
}

pub static COPY: KernelSource = KernelSource {
    file: "copy.cu",
    code: include_str!("copy.cu"),
    kernels: || names(&["copy", "fill", "triangle"], &WIDTHS),
};

pub static CAST: KernelSource = KernelSource {
    file: "cast.cu",
    code: include_str!("cast.cu"),
    kernels: || ALL_DTYPES.iter().flat_map(|s| ALL_DTYPES.iter().map(move |d| format!("cast_{s}_to_{d}"))).collect(),
};

pub static ELEMENTWISE: KernelSource = KernelSource {
    file: "elementwise.cu",
    code: include_str!("elementwise.cu"),
    kernels: || {
        let mut v = names(&["unary", "binary"], &["f32", "f16", "bf16", "i64"]);
        v.extend(names(&["compare", "where"], &ALL_DTYPES));
        v
    },
};

pub static GELU: KernelSource = KernelSource {
    file: "gelu.cu",
    code: include_str!("gelu.cu"),
    kernels: || names(&["gelu_forward", "gelu_backward"], &FLOATS),
};

pub static REDUCE: KernelSource = KernelSource {
    file: "reduce.cu",
    code: include_str!("reduce.cu"),
    kernels: || {
        let mut dtypes = ALL_DTYPES.to_vec();
        dtypes.push("f64");
        names(
            &[
                "reduce_rows",
                "arg_reduce_rows",
                "reduce_cols_partial",
                "reduce_cols_final",
                "sum_all_partial",
                "sum_all_final",
            ],
            &dtypes,
        )
    },
};

pub static SOFTMAX: KernelSource = KernelSource {
    file: "softmax.cu",
    code: include_str!("softmax.cu"),
    kernels: || names(&["softmax_forward", "softmax_backward"], &FLOATS),
};

pub static LAYER_NORM: KernelSource = KernelSource {
    file: "layer_norm.cu",
    code: include_str!("layer_norm.cu"),
    kernels: || {
        names(
            &[
                "layer_norm_forward",
                "layer_norm_backward_dx",
                "layer_norm_backward_params_partial",
                "layer_norm_backward_params_final",
            ],
            &FLOATS,
        )
    },
};

pub static CROSS_ENTROPY: KernelSource = KernelSource {
    file: "cross_entropy.cu",
    code: include_str!("cross_entropy.cu"),
    kernels: || names(&["cross_entropy_forward", "cross_entropy_backward"], &FLOATS),
};

pub static INDEX: KernelSource = KernelSource {
    file: "index.cu",
    code: include_str!("index.cu"),
    kernels: || names(&["select_rows", "index_add_rows", "gather", "scatter_add"], &ALL_DTYPES),
};

pub static ADAMW: KernelSource =
    KernelSource { file: "adamw.cu", code: include_str!("adamw.cu"), kernels: || vec!["adamw_multi_f32".into()] };

pub static ATTENTION: KernelSource = KernelSource {
    file: "attention.cu",
    code: include_str!("attention.cu"),
    kernels: || names(&["causal_softmax", "causal_softmax_backward"], &FLOATS),
};

pub static FLASH_ATTENTION: KernelSource = KernelSource {
    file: "flash_attention.cu",
    code: include_str!("flash_attention.cu"),
    kernels: || {
        let mut v = Vec::new();
        for d in super::flash_attention::HEAD_DIMS {
            for kind in ["flash_forward", "flash_delta", "flash_backward_dq", "flash_backward_dkv"] {
                v.extend(FLOATS.iter().map(|t| format!("{kind}_d{d}_{t}")));
            }
        }
        v
    },
};

pub static GEMM_TILED: KernelSource = KernelSource {
    file: "gemm_tiled.cu",
    code: include_str!("gemm_tiled.cu"),
    kernels: || names(&["gemm_tiled"], &FLOATS),
};

pub static RMS_NORM: KernelSource = KernelSource {
    file: "rms_norm.cu",
    code: include_str!("rms_norm.cu"),
    kernels: || {
        names(
            &[
                "rms_norm_forward",
                "rms_norm_backward_dx",
                "rms_norm_backward_weight_partial",
                "rms_norm_backward_weight_final",
            ],
            &FLOATS,
        )
    },
};

pub static ROPE: KernelSource =
    KernelSource { file: "rope.cu", code: include_str!("rope.cu"), kernels: || names(&["rope"], &FLOATS) };

pub static SWIGLU: KernelSource = KernelSource {
    file: "swiglu.cu",
    code: include_str!("swiglu.cu"),
    kernels: || names(&["silu_backward", "swiglu_forward", "swiglu_backward"], &FLOATS),
};

pub static MOE_ROUTE: KernelSource = KernelSource {
    file: "moe_route.cu",
    code: include_str!("moe_route.cu"),
    kernels: || {
        let mut v = names(&["moe_top_k"], &FLOATS);
        v.extend(["moe_expert_counts", "moe_expert_offsets", "moe_group_by_expert"].map(String::from));
        v
    },
};

/// Every source, for the build check and `CudaDevice::load_all_kernels`.
pub static ALL: [&KernelSource; 17] = [
    &COPY,
    &CAST,
    &ELEMENTWISE,
    &GELU,
    &REDUCE,
    &SOFTMAX,
    &LAYER_NORM,
    &CROSS_ENTROPY,
    &INDEX,
    &ADAMW,
    &ATTENTION,
    &FLASH_ATTENTION,
    &GEMM_TILED,
    &RMS_NORM,
    &ROPE,
    &SWIGLU,
    &MOE_ROUTE,
];
