//! One module per subcommand.

pub mod bench;
pub mod eval;
pub mod generate;
pub mod gradcheck;
pub mod info;
pub mod tokenize;
pub mod train;
