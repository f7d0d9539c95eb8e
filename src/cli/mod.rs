//! One module per subcommand.

pub mod demo;
pub mod flash;
pub mod image;
pub mod keygen;
pub mod profile;
pub mod release;
pub mod rom;
pub mod serve;
pub mod sim;
pub mod verify;
pub mod watch;
