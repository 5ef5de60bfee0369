//! One module per subcommand.

pub mod gradcheck;
