//! skiff-registry
