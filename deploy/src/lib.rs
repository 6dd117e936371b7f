//! skiffd
