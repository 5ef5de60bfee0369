//! NCCL on the GPU: the transport that sums data-parallel gradients where
//! they live (gpt/src/distributed/nccl.rs), in a world of one rank.
//!
//! `#[ignore]`d: they need a CUDA device and `libnccl.so.2` reachable as
//! `libnccl.so` (`scripts/gpu-run.sh` finds the pip package's file, links
//! it, and runs them with `--ignored`). With one rank the sum over the ranks
//! is the buffer itself, so the checks are exact: the all-reduce leaves a
//! device buffer as it was, and the gradient buckets built, summed and cut
//! back on the GPU give every parameter the gradient the host path gives,
//! a parameter without one staying without.

mod cuda;

use cuda::{gpu, nonzero, skip_without_gpu};
use scratchgpt::autograd::Var;
use scratchgpt::gpt::distributed::{all_reduce_mean_gradients, Communicator, NcclCommunicator, SingleProcess};
use scratchgpt::tensor::{DType, Device, Tensor};

fn nccl_alone() -> NcclCommunicator {
    NcclCommunicator::new(Box::new(SingleProcess), 0).unwrap_or_else(|e| panic!("starting NCCL: {e}"))
}

#[test]
#[ignore = "needs a CUDA device and NCCL"]
fn an_all_reduce_over_one_rank_leaves_the_device_buffer_as_it_was() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    let comm = nccl_alone();
    assert!(comm.reduces_on_device());
    let host = nonzero(&[1000], 1);
    let mut on_gpu = host.to_device(device).unwrap();
    comm.all_reduce_sum_on_device(&mut on_gpu).unwrap();
    assert_eq!(on_gpu.device(), device);
    assert_eq!(on_gpu.to_vec::<f32>(), host.to_vec::<f32>());

    // A transposed view is packed first: the values keep their order.
    let matrix = nonzero(&[6, 9], 2);
    let mut view = matrix.to_device(device).unwrap().transpose(0, 1);
    comm.all_reduce_sum_on_device(&mut view).unwrap();
    assert_eq!(view.to_vec::<f32>(), matrix.transpose(0, 1).to_vec::<f32>());

    // Host tensors and other dtypes are refused, not summed.
    assert!(comm.all_reduce_sum_on_device(&mut host.clone()).is_err());
    let mut halves = host.to_dtype(DType::BF16).to_device(device).unwrap();
    assert!(comm.all_reduce_sum_on_device(&mut halves).is_err());
}

/// Parameters of four shapes on the GPU, the third without a gradient.
fn parameters_with_gradients(device: Device) -> Vec<Var> {
    let shapes: [&[usize]; 4] = [&[3, 5], &[7], &[2, 2, 2], &[4]];
    shapes
        .iter()
        .enumerate()
        .map(|(i, &shape)| {
            let p = Var::parameter(Tensor::zeros_on(shape.to_vec(), DType::F32, device));
            if i != 2 {
                p.set_grad(Some(nonzero(shape, 10 + i as u64).to_device(device).unwrap()));
            }
            p
        })
        .collect()
}

#[test]
#[ignore = "needs a CUDA device and NCCL"]
fn the_device_buckets_give_the_host_buckets_gradients() {
    if skip_without_gpu() {
        return;
    }
    let device = gpu();
    let (through_host, on_device) = (parameters_with_gradients(device), parameters_with_gradients(device));
    let host_bytes = all_reduce_mean_gradients(&SingleProcess, &through_host);
    let device_bytes = all_reduce_mean_gradients(&nccl_alone(), &on_device);
    // The same bucket is handed over: the gradients and a presence count
    // per parameter.
    let values: usize = on_device.iter().map(|p| p.dims().iter().product::<usize>()).sum();
    assert_eq!((host_bytes, device_bytes), (4 * (values + 4), 4 * (values + 4)));
    for (i, (a, b)) in through_host.iter().zip(&on_device).enumerate() {
        let (a, b) = (a.grad(), b.grad());
        assert_eq!(a.is_some(), b.is_some(), "parameter {i}: a gradient on one path only");
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(b.device(), device, "parameter {i}");
            assert_eq!(b.dims(), a.dims(), "parameter {i}");
            assert_eq!(b.to_vec::<f32>(), a.to_vec::<f32>(), "parameter {i}");
        }
    }
}
