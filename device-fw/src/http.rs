//! HTTP/1.1 Range client over a [`crate::socket::Socket`].
