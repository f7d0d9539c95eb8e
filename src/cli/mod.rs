//! One module per subcommand.

pub mod keygen;
pub mod profile;
pub mod verify;
