//! skiff-client
