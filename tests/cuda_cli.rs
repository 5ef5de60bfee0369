//! `--device cuda` where there is no GPU: every command that takes the flag
//! stops before any work with one line naming the reason and exit code 2.
//! (On a machine with a GPU this test has nothing to check and says so.)

mod common;

use common::fails_with;

#[test]
fn device_cuda_without_a_gpu_is_a_one_line_error() {
    if scratchgpt::tensor::Device::cuda_count() > 0 {
        eprintln!("skipped: this machine has a GPU");
        return;
    }
    let commands: [&[&str]; 5] = [
        &["train", "--device", "cuda", "--steps", "1"],
        &["generate", "--device", "cuda", "--model", "no-such-folder", "--prompt", "hi"],
        &["eval", "--device", "cuda", "--model", "no-such-folder", "--data", "no-such-file"],
        &["bench", "train", "--device", "cuda", "--preset", "nano", "--steps", "1"],
        &["bench", "generate", "--device", "cuda:1", "--preset", "nano"],
    ];
    for args in commands {
        fails_with(args, "no CUDA device");
    }
    // Without the driver library the message names it, as the driver would.
    if !scratchgpt::kernels::cuda::libraries::driver_present() {
        fails_with(&["train", "--device", "cuda"], "no CUDA device: libcuda.so.1 not found");
    }
}

#[test]
fn a_device_that_is_not_a_device_is_refused() {
    fails_with(&["train", "--device", "gpu"], "--device must be cpu, cuda or cuda:N");
    fails_with(&["bench", "train", "--precision", "bf16"], "--precision bf16 needs --device cuda");
}
