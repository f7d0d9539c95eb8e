//! Modem drivers (AT socket mode).
