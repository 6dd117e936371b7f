//! skiff-logger
