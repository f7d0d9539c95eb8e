//! The device's OTA state in flash: download progress and failed versions.
