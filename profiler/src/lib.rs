//! `profiler`: times the operators of LLM inference on NVIDIA GPUs (cuBLASLt GEMMs, NVRTC-compiled
//! kernels, paged attention, NCCL collectives) and writes Vidur-compatible profile CSVs.
//!
//! The crate builds with no CUDA installed: every CUDA library is loaded at run time through
//! `cudarc`'s dynamic loading. Everything except the [`gpu`] module runs on a CPU (the sweep plan,
//! the CSV writers, the CPU reference kernels and the NVRTC compile check).

pub mod gpu;
pub mod kernels;
pub mod libs;
pub mod output;
pub mod plan;
pub mod reference;
pub mod shapes;
pub mod stats;
