//! Tensor operations, one family per file.

pub mod attention;
pub mod binary;
pub mod cross_entropy;
pub mod embedding;
pub mod index;
pub mod inplace;
pub mod linear;
pub mod matmul;
pub mod operators;
pub mod reduce;
pub mod rows;
pub mod unary;
