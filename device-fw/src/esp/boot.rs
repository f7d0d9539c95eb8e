//! The second-stage bootloader's slot choice with app rollback, and the otadata writes it and the app make.
