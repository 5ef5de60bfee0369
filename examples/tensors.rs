//! Tensors, the way the book introduces them: creation, dtypes, shapes,
//! reshape/view, transpose and matrix multiplication.
//!
//! Run: `cargo run --release --example tensors`

use scratchgpt::prelude::*;

fn main() {
    // A scalar, a vector, a matrix and a 3-D tensor from nested literals.
    let tensor0d = Tensor::new(1).unwrap();
    let tensor1d = tensor![1, 2, 3];
    let tensor2d = tensor![[1, 2], [3, 4]];
    let tensor3d = tensor![[[1, 2], [3, 4]], [[5, 6], [7, 8]]];
    println!("{tensor0d}\n{tensor1d}\n{tensor2d}\n{tensor3d}\n");

    // Integer literals become int64, float literals float32, as in PyTorch.
    println!("{:?}", tensor1d.dtype()); // I64
    let floatvec = tensor![1.0, 2.0, 3.0];
    println!("{:?}", floatvec.dtype()); // F32
    let floatvec = tensor1d.to_dtype(DType::F32);
    println!("{:?}\n", floatvec.dtype()); // F32

    let tensor2d = tensor![[1, 2, 3], [4, 5, 6]];
    println!("{tensor2d}");
    println!("shape: {}", tensor2d.shape()); // [2, 3]

    // reshape and view: the same six numbers as 3×2. Both share storage here.
    println!("{}", tensor2d.reshape(&[3, 2]));
    println!("{}", tensor2d.view(&[3, 2]));

    // Transpose swaps strides; no number moves.
    println!("{}", tensor2d.t());
    println!("strides {:?} → {:?}\n", tensor2d.strides(), tensor2d.t().strides());

    // Matrix multiplication: [2, 3] · [3, 2] → [2, 2].
    let a = tensor2d.to_dtype(DType::F32);
    println!("{}", a.matmul(&a.t()));
    // tensor([[14., 32.],
    //         [32., 77.]])
}
