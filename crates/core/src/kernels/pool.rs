//! Pooling and resampling kernels over contiguous `[planes, h, w]` buffers.
