//! skiff-router
