//! Everything that needs a GPU: the device, the cuBLASLt GEMMs, the kernel launchers, the timing
//! harness, the sweeps, `profiler check` and the NCCL collectives. Built on cudarc's dynamically
//! loaded `result`/`sys` layers, so the binary links nothing CUDA.

pub mod ceilings;
pub mod check;
#[cfg(feature = "nccl")]
pub mod collectives;
pub mod device;
pub mod gemm;
pub mod ops;
pub mod run;
pub mod sweep;
pub mod timer;

pub use device::{Buffer, Gpu, GpuError, GpuInfo, GpuResult, Kernels};
