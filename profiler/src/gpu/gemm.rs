//! bf16 GEMMs through cuBLASLt in the layout of `torch.nn.functional.linear` ("TN":
//! `y[M, N] = x[M, K] · W[N, K]ᵀ`), fp32 compute, with the descriptors and the first heuristic
//! answer built once per shape outside the timed region and an explicit workspace (which also makes
//! the call safe to capture in a CUDA graph).

use std::ffi::c_void;

use cudarc::cublaslt::{result as lt, sys};
use cudarc::driver::sys::{CUdeviceptr, CUstream};

use super::device::{Buffer, Gpu, GpuError, GpuResult};

fn cub<T>(call: &'static str, r: Result<T, lt::CublasError>) -> GpuResult<T> {
    r.map_err(|e| GpuError::Cublas {
        call,
        detail: format!("{e:?}"),
    })
}

/// A cuBLASLt handle plus its workspace.
pub struct Lt {
    handle: sys::cublasLtHandle_t,
    workspace: Buffer,
}

/// Descriptors and the chosen algorithm for one `(M, N, K)`.
pub struct GemmPlan {
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    c: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
    /// Tokens.
    pub m: u64,
    /// Output features.
    pub n: u64,
    /// Input features.
    pub k: u64,
}

impl Drop for GemmPlan {
    fn drop(&mut self) {
        // SAFETY: created in `Lt::plan`, destroyed once.
        unsafe {
            let _ = lt::destroy_matrix_layout(self.a);
            let _ = lt::destroy_matrix_layout(self.b);
            let _ = lt::destroy_matrix_layout(self.c);
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// cuBLASLt's version number (e.g. 130000), when the library loads.
pub fn version() -> Option<usize> {
    // SAFETY: probe then a call without arguments.
    unsafe { sys::is_culib_present().then(|| sys::cublasLtGetVersion()) }
}

impl Lt {
    /// Creates the handle and a workspace (32 MiB on sm90 and newer, 4 MiB otherwise).
    pub fn new(gpu: &Gpu) -> GpuResult<Self> {
        let handle = cub("cublasLtCreate", lt::create_handle())?;
        let bytes = if gpu.info.compute_capability.0 >= 9 {
            32 << 20
        } else {
            4 << 20
        };
        Ok(Self {
            handle,
            workspace: gpu.alloc(bytes)?,
        })
    }

    /// Builds the plan for `y[m, n] = x[m, k] · W[n, k]ᵀ` (bf16 in and out).
    pub fn plan(&self, m: u64, n: u64, k: u64) -> GpuResult<GemmPlan> {
        use sys::cudaDataType_t::CUDA_R_16BF;
        let a = cub(
            "cublasLtMatrixLayoutCreate",
            lt::create_matrix_layout(CUDA_R_16BF, k, n, k as i64),
        )?;
        let b = cub(
            "cublasLtMatrixLayoutCreate",
            lt::create_matrix_layout(CUDA_R_16BF, k, m, k as i64),
        )?;
        let c = cub(
            "cublasLtMatrixLayoutCreate",
            lt::create_matrix_layout(CUDA_R_16BF, n, m, n as i64),
        )?;
        let desc = cub(
            "cublasLtMatmulDescCreate",
            lt::create_matmul_desc(
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cudaDataType_t::CUDA_R_32F,
            ),
        )?;
        // cublasOperation_t as int32: CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
        let ta: i32 = 1;
        let tb: i32 = 0;
        // SAFETY: attribute buffers are the documented types and sizes.
        unsafe {
            cub(
                "cublasLtMatmulDescSetAttribute",
                lt::set_matmul_desc_attribute(
                    desc,
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                    &ta as *const _ as *const c_void,
                    std::mem::size_of_val(&ta),
                ),
            )?;
            cub(
                "cublasLtMatmulDescSetAttribute",
                lt::set_matmul_desc_attribute(
                    desc,
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                    &tb as *const _ as *const c_void,
                    std::mem::size_of_val(&tb),
                ),
            )?;
        }
        let pref = cub("cublasLtMatmulPreferenceCreate", lt::create_matmul_pref())?;
        let ws = self.workspace.bytes() as u64;
        // SAFETY: as above; `pref` is destroyed right after the heuristic query.
        let heuristic = unsafe {
            cub(
                "cublasLtMatmulPreferenceSetAttribute",
                lt::set_matmul_pref_attribute(
                    pref,
                    sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    &ws as *const u64 as *const c_void,
                    std::mem::size_of::<u64>(),
                ),
            )?;
            let h = lt::get_matmul_algo_heuristic(self.handle, desc, a, b, c, c, pref);
            let _ = lt::destroy_matmul_pref(pref);
            cub("cublasLtMatmulAlgoGetHeuristic", h)?
        };
        Ok(GemmPlan {
            desc,
            a,
            b,
            c,
            algo: heuristic.algo,
            m,
            n,
            k,
        })
    }

    /// Runs `y = x · Wᵀ` with `plan` on `stream`.
    pub fn run(
        &self,
        plan: &GemmPlan,
        w: CUdeviceptr,
        x: CUdeviceptr,
        y: CUdeviceptr,
        stream: CUstream,
    ) -> GpuResult<()> {
        let alpha = 1.0f32;
        let beta = 0.0f32;
        // SAFETY: the buffers hold the shapes of `plan` (the callers allocate them from it); the
        // workspace is this handle's own.
        unsafe {
            cub(
                "cublasLtMatmul",
                lt::matmul(
                    self.handle,
                    plan.desc,
                    &alpha as *const f32 as *const c_void,
                    &beta as *const f32 as *const c_void,
                    w as *const c_void,
                    plan.a,
                    x as *const c_void,
                    plan.b,
                    y as *const c_void,
                    plan.c,
                    y as *mut c_void,
                    plan.c,
                    &plan.algo,
                    self.workspace.ptr() as *mut c_void,
                    self.workspace.bytes(),
                    stream as sys::cudaStream_t,
                ),
            )
        }
    }
}

impl Drop for Lt {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once.
        unsafe {
            let _ = lt::destroy_handle(self.handle);
        }
    }
}
