//! Differentiable ops: each file pairs forwards with their backwards.

pub mod attention;
pub mod binary;
pub mod dropout;
pub mod index;
pub mod layer_norm;
pub mod linear;
pub mod matmul;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod shape;
pub mod softmax;
pub mod swiglu;
pub mod unary;
