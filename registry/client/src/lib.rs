//! skiff-registry-client
