//! skiff-builder
