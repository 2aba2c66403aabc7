//! One GPU through the CUDA driver API (cudarc's `result`/`sys` layers): context, stream, memory,
//! the NVRTC-compiled kernel module, and the start-up probe that turns a missing driver or GPU into
//! one clear sentence instead of a panic.

use std::collections::BTreeMap;
use std::ffi::{c_void, CString};
use std::path::PathBuf;

use cudarc::driver::{result, sys};

use crate::kernels;

/// Why GPU work failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// libcuda could not be loaded.
    #[error("no NVIDIA driver: libcuda.so.1 was not found (looked on the system loader path{}); install the NVIDIA driver, or point LD_LIBRARY_PATH, $PROFILER_CUDA_LIB_DIRS or --cuda-lib-dir at the directory that holds libcuda.so.1", fmt_dirs(.searched))]
    NoDriver {
        /// `LD_LIBRARY_PATH` directories that were searched.
        searched: Vec<PathBuf>,
    },
    /// The driver loaded but reports no usable GPU.
    #[error("no CUDA GPU: the NVIDIA driver loaded but {detail}; run on a machine with an NVIDIA GPU (check `nvidia-smi`), or set CUDA_VISIBLE_DEVICES to a GPU this process may use")]
    NoDevice {
        /// What the driver said.
        detail: String,
    },
    /// A required CUDA library (cuBLASLt, NVRTC) could not be loaded.
    #[error("{what} ({file}) was not found (looked on the system loader path{}); install it (pip wheel `{wheel}`) or point $PROFILER_CUDA_LIB_DIRS or --cuda-lib-dir at its directory", fmt_dirs(.searched))]
    MissingLibrary {
        /// Library.
        what: &'static str,
        /// File name.
        file: &'static str,
        /// The PyPI wheel that ships it.
        wheel: &'static str,
        /// Directories searched.
        searched: Vec<PathBuf>,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver call {call} failed: {detail}")]
    Driver {
        /// The call.
        call: &'static str,
        /// The error.
        detail: String,
    },
    /// A cuBLASLt call failed.
    #[error("cuBLASLt call {call} failed: {detail}")]
    Cublas {
        /// The call.
        call: &'static str,
        /// The error.
        detail: String,
    },
    /// A NCCL call failed.
    #[error("NCCL call {call} failed: {detail}")]
    Nccl {
        /// The call.
        call: &'static str,
        /// The error.
        detail: String,
    },
    /// Kernel compilation failed.
    #[error(transparent)]
    Compile(#[from] kernels::CompileError),
    /// A shape the kernels do not support.
    #[error("{0}")]
    Unsupported(String),
}

fn fmt_dirs(d: &[PathBuf]) -> String {
    if d.is_empty() {
        String::new()
    } else {
        let v: Vec<String> = d.iter().map(|p| p.display().to_string()).collect();
        format!(" and in {}", v.join(", "))
    }
}

/// Result of GPU work.
pub type GpuResult<T> = Result<T, GpuError>;

/// Maps a driver error to [`GpuError::Driver`].
pub fn drv<T>(call: &'static str, r: Result<T, result::DriverError>) -> GpuResult<T> {
    r.map_err(|e| GpuError::Driver {
        call,
        detail: e
            .error_string()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{e:?}")),
    })
}

/// Facts about the GPU read at start-up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GpuInfo {
    /// Device ordinal.
    pub ordinal: usize,
    /// Name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// Compute capability.
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors.
    pub sms: i32,
    /// L2 cache, bytes.
    pub l2_bytes: i64,
    /// Device memory, bytes.
    pub memory_bytes: usize,
    /// Peak SM clock, kHz.
    pub sm_clock_khz: i32,
    /// Peak memory clock, kHz.
    pub memory_clock_khz: i32,
    /// Driver's CUDA version (13000 = 13.0).
    pub driver_cuda_version: i32,
    /// Visible GPUs.
    pub device_count: i32,
}

impl GpuInfo {
    /// The NVRTC architecture for this GPU (`sm_90a` on Hopper, else `sm_XY`).
    pub fn arch(&self) -> String {
        let (maj, min) = self.compute_capability;
        if maj == 9 && min == 0 {
            "sm_90a".into()
        } else {
            format!("sm_{maj}{min}")
        }
    }

    /// The catalog device name guessed from the GPU name (`h100`, `h200`, `a100`, `a40`, `l40s`,
    /// `b200`), or the lower-cased first word after "NVIDIA".
    pub fn catalog_name(&self) -> String {
        let n = self.name.to_ascii_lowercase();
        for known in ["h200", "h100", "a100", "a40", "l40s", "b200"] {
            if n.contains(known) {
                return known.into();
            }
        }
        n.split_whitespace()
            .find(|w| *w != "nvidia")
            .unwrap_or("gpu")
            .to_string()
    }
}

/// Device memory, freed on drop.
#[derive(Debug)]
pub struct Buffer {
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

impl Buffer {
    /// Device address.
    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }
    /// Size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated by `Gpu::alloc` and freed once here, after the context is idle (work
        // launched on a non-blocking stream may still read it).
        unsafe {
            let _ = result::ctx::synchronize();
            let _ = result::free_sync(self.ptr);
        }
    }
}

/// The compiled kernels.
pub struct Kernels {
    _module: sys::CUmodule,
    functions: BTreeMap<&'static str, sys::CUfunction>,
    /// NVRTC's register report.
    pub registers: Vec<(String, u32, u32)>,
}

impl Kernels {
    /// A kernel by name (every name of [`kernels::KERNEL_NAMES`] is present).
    pub fn get(&self, name: &str) -> sys::CUfunction {
        self.functions[name]
    }
}

/// One GPU with its primary context and one stream.
pub struct Gpu {
    /// Facts read at start-up.
    pub info: GpuInfo,
    ctx: sys::CUcontext,
    /// The stream every operation runs on.
    pub stream: sys::CUstream,
}

/// Checks that the driver loads and a GPU exists, without opening one; the error is the sentence
/// to print.
pub fn probe() -> GpuResult<i32> {
    // SAFETY: only dlopens candidates; no symbol is called when it returns false.
    if !unsafe { sys::is_culib_present() } {
        return Err(GpuError::NoDriver {
            searched: crate::libs::searched_dirs(),
        });
    }
    result::init().map_err(|e| GpuError::NoDevice {
        detail: format!(
            "cuInit failed ({})",
            e.error_string()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("{e:?}"))
        ),
    })?;
    let n = result::device::get_count().map_err(|e| GpuError::NoDevice {
        detail: format!("cuDeviceGetCount failed ({e:?})"),
    })?;
    if n == 0 {
        return Err(GpuError::NoDevice {
            detail: "it reports 0 devices".into(),
        });
    }
    Ok(n)
}

/// Checks that a library cudarc will load is present, with the clear error if not.
pub fn require_library(
    what: &'static str,
    file: &'static str,
    wheel: &'static str,
    present: bool,
) -> GpuResult<()> {
    if present {
        Ok(())
    } else {
        Err(GpuError::MissingLibrary {
            what,
            file,
            wheel,
            searched: crate::libs::searched_dirs(),
        })
    }
}

impl Gpu {
    /// Opens GPU `ordinal` (after [`probe`]), binds its primary context to this thread and creates
    /// a stream.
    pub fn open(ordinal: usize) -> GpuResult<Self> {
        let count = probe()?;
        if ordinal as i32 >= count {
            return Err(GpuError::NoDevice {
                detail: format!("GPU {ordinal} was asked for and only {count} are visible"),
            });
        }
        let dev = drv("cuDeviceGet", result::device::get(ordinal as i32))?;
        // SAFETY: `dev` is a valid device; the retained context stays alive for the process.
        let ctx = drv("cuDevicePrimaryCtxRetain", unsafe {
            result::primary_ctx::retain(dev)
        })?;
        drv("cuCtxSetCurrent", unsafe { result::ctx::set_current(ctx) })?;
        let stream = drv(
            "cuStreamCreate",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        let attr = |a: sys::CUdevice_attribute| -> GpuResult<i32> {
            // SAFETY: valid device and attribute.
            drv("cuDeviceGetAttribute", unsafe {
                result::device::get_attribute(dev, a)
            })
        };
        use sys::CUdevice_attribute as A;
        let mut driver_version = 0;
        // SAFETY: one out-pointer.
        unsafe {
            sys::cuDriverGetVersion(&mut driver_version);
        }
        let info = GpuInfo {
            ordinal,
            name: drv("cuDeviceGetName", result::device::get_name(dev))?,
            compute_capability: (
                attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            sms: attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            l2_bytes: attr(A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as i64,
            memory_bytes: drv("cuDeviceTotalMem", unsafe {
                result::device::total_mem(dev)
            })?,
            sm_clock_khz: attr(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)?,
            memory_clock_khz: attr(A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)?,
            driver_cuda_version: driver_version,
            device_count: count,
        };
        Ok(Self { info, ctx, stream })
    }

    /// Makes this GPU's context current on the calling thread.
    pub fn bind(&self) -> GpuResult<()> {
        // SAFETY: the context was retained in `open`.
        drv("cuCtxSetCurrent", unsafe {
            result::ctx::set_current(self.ctx)
        })
    }

    /// Allocates `bytes` of device memory.
    pub fn alloc(&self, bytes: usize) -> GpuResult<Buffer> {
        // SAFETY: plain allocation; freed by `Buffer::drop`.
        let ptr = drv("cuMemAlloc", unsafe { result::malloc_sync(bytes.max(16)) })?;
        Ok(Buffer { ptr, bytes })
    }

    /// Allocates and fills with `data`.
    pub fn upload<T: Copy>(&self, data: &[T]) -> GpuResult<Buffer> {
        let b = self.alloc(std::mem::size_of_val(data))?;
        // SAFETY: the buffer holds exactly `data`'s bytes; `data` outlives the copy because the
        // stream is synchronised before returning (the stream does not order with the legacy
        // default stream, so a synchronous copy would not be ordered before later kernels).
        drv("cuMemcpyHtoDAsync", unsafe {
            result::memcpy_htod_async(b.ptr, data, self.stream)
        })?;
        self.sync()?;
        Ok(b)
    }

    /// Copies `n` values of type `T` from the start of `b`.
    pub fn download<T: Copy + Default>(&self, b: &Buffer, n: usize) -> GpuResult<Vec<T>> {
        assert!(
            n * std::mem::size_of::<T>() <= b.bytes,
            "download past the buffer"
        );
        self.sync()?;
        let mut v = vec![T::default(); n];
        // SAFETY: `v` holds `n` values and the buffer at least as many bytes.
        drv("cuMemcpyDtoH", unsafe {
            result::memcpy_dtoh_sync(&mut v, b.ptr)
        })?;
        Ok(v)
    }

    /// Fills `b` with the 16-bit pattern `value` (e.g. 0x7fc0, a bf16 NaN, to poison outputs).
    pub fn fill_u16(&self, b: &Buffer, value: u16) -> GpuResult<()> {
        // SAFETY: writes within the buffer.
        drv("cuMemsetD16Async", unsafe {
            sys::cuMemsetD16Async(b.ptr, value, b.bytes / 2, self.stream).result()
        })
    }

    /// Waits for the stream.
    pub fn sync(&self) -> GpuResult<()> {
        // SAFETY: valid stream.
        drv("cuStreamSynchronize", unsafe {
            result::stream::synchronize(self.stream)
        })
    }

    /// Compiles the kernels with NVRTC for this GPU and loads them.
    pub fn load_kernels(&self) -> GpuResult<Kernels> {
        let compiled = kernels::compile(&self.info.arch())?;
        let mut image = compiled.cubin.clone();
        image.push(0);
        // SAFETY: a CUBIN produced by NVRTC for this device's architecture.
        let module = drv("cuModuleLoadData", unsafe {
            result::module::load_data(image.as_ptr() as *const c_void)
        })?;
        let mut functions = BTreeMap::new();
        for name in kernels::KERNEL_NAMES {
            let c = CString::new(name).expect("no NUL");
            // SAFETY: the module was just loaded.
            let f = drv("cuModuleGetFunction", unsafe {
                result::module::get_function(module, c)
            })?;
            functions.insert(name, f);
        }
        Ok(Kernels {
            _module: module,
            functions,
            registers: compiled.register_report(),
        })
    }
}

/// A kernel argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    /// A device pointer.
    Ptr(sys::CUdeviceptr),
    /// An `int`.
    I32(i32),
    /// A `long`.
    I64(i64),
    /// A `float`.
    F32(f32),
}

/// Launches `f` on `stream` with `args` (crate-internal: `f` and `stream` must be live handles).
pub(crate) fn launch(
    f: sys::CUfunction,
    grid: (u32, u32, u32),
    block: u32,
    stream: sys::CUstream,
    args: &[Arg],
) -> GpuResult<()> {
    let mut vals: Vec<Arg> = args.to_vec();
    let mut params: Vec<*mut c_void> = vals
        .iter_mut()
        .map(|a| match a {
            Arg::Ptr(p) => p as *mut u64 as *mut c_void,
            Arg::I32(v) => v as *mut i32 as *mut c_void,
            Arg::I64(v) => v as *mut i64 as *mut c_void,
            Arg::F32(v) => v as *mut f32 as *mut c_void,
        })
        .collect();
    // SAFETY: the parameter list matches the kernel's signature (checked by the launchers in
    // `ops`); the values outlive the call, which copies them.
    drv("cuLaunchKernel", unsafe {
        result::launch_kernel(f, grid, (block, 1, 1), 0, stream, &mut params)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, cc: (i32, i32)) -> GpuInfo {
        GpuInfo {
            ordinal: 0,
            name: name.into(),
            compute_capability: cc,
            sms: 132,
            l2_bytes: 50 << 20,
            memory_bytes: 80 << 30,
            sm_clock_khz: 1_980_000,
            memory_clock_khz: 2_619_000,
            driver_cuda_version: 13000,
            device_count: 1,
        }
    }

    #[test]
    fn catalog_names_and_architectures() {
        assert_eq!(info("NVIDIA H100 80GB HBM3", (9, 0)).catalog_name(), "h100");
        assert_eq!(info("NVIDIA H100 80GB HBM3", (9, 0)).arch(), "sm_90a");
        assert_eq!(info("NVIDIA H200", (9, 0)).catalog_name(), "h200");
        assert_eq!(info("NVIDIA A100-SXM4-80GB", (8, 0)).arch(), "sm_80");
        assert_eq!(info("NVIDIA A40", (8, 6)).catalog_name(), "a40");
        assert_eq!(info("NVIDIA RTX 6000 Ada", (8, 9)).catalog_name(), "rtx");
    }

    #[test]
    fn error_sentences_name_what_where_and_how() {
        let e = GpuError::NoDriver {
            searched: vec!["/x/lib".into()],
        }
        .to_string();
        assert!(
            e.contains("libcuda.so.1") && e.contains("/x/lib") && e.contains("--cuda-lib-dir"),
            "{e}"
        );
        let e = GpuError::MissingLibrary {
            what: "NVRTC",
            file: "libnvrtc.so.13",
            wheel: "nvidia-cuda-nvrtc",
            searched: vec![],
        }
        .to_string();
        assert!(
            e.contains("libnvrtc.so.13") && e.contains("nvidia-cuda-nvrtc"),
            "{e}"
        );
    }
}
