//! One module per subcommand.

pub mod image;
pub mod keygen;
pub mod profile;
pub mod verify;
pub mod watch;
