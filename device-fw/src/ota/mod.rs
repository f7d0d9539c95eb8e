//! The download engine.
