//! skiff-controller
