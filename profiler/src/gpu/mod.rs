//! Everything that needs a GPU: the device, the cuBLASLt GEMMs, the kernel launchers, the timing
//! harness, the sweeps, `profiler check` and the NCCL collectives. Built on cudarc's dynamically
//! loaded `result`/`sys` layers, so the binary links nothing CUDA.

pub mod device;
pub mod gemm;
pub mod ops;
pub mod timer;

pub use device::{Buffer, Gpu, GpuError, GpuInfo, GpuResult, Kernels};
