//! Looking inside a trained model: pictures of what it learned.
//!
//! - [`embeddings`]: the token embedding table on a 2-D map, and each
//!   token's nearest neighbours by cosine similarity;
//! - [`pca`]: the principal component analysis behind that map.

pub mod embeddings;
pub mod pca;
