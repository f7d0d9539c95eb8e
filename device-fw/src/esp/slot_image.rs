//! Checking an app image where it lies: in an OTA slot of the flash.
