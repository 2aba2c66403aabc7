//! The CUDA C kernels (compiled at run time by NVRTC, so nothing CUDA is needed at build time) and
//! their compilation. One program holds every kernel; it includes no header.

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result, sys};

/// Tokens per KV-cache page (vLLM's default block size).
pub const PAGE_TOKENS: u32 = 16;
/// Head dimension the attention kernels are compiled for.
pub const HEAD_DIM: u32 = 128;
/// Largest number of query heads per KV head the decode kernel supports.
pub const MAX_GQA_GROUP: u32 = 8;
/// Most keys one decode split may cover (its shared-memory score buffer).
pub const DECODE_SPLIT_MAX_KEYS: u32 = 512;
/// Query rows per prefill CTA.
pub const PREFILL_BLOCK_ROWS: u32 = 64;

const COMMON: &str = include_str!("common.cuh");
const ELEMENTWISE: &str = include_str!("elementwise.cu");
const ATTENTION: &str = include_str!("attention.cu");

/// Every kernel entry point of the program.
pub const KERNEL_NAMES: [&str; 12] = [
    "rms_norm",
    "fused_add_rms_norm",
    "rotary_neox",
    "silu_and_mul",
    "residual_add",
    "reshape_and_cache",
    "embedding",
    "fill_random",
    "spin_wait",
    "paged_prefill",
    "paged_decode_split",
    "decode_merge",
];

/// The whole program's source.
pub fn program_source() -> String {
    format!("{COMMON}\n{ELEMENTWISE}\n{ATTENTION}\n")
}

/// NVRTC options for a real architecture such as `sm_90` (with `-v` register reports from ptxas).
pub fn compile_options(arch: &str) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        format!("-DHEAD_DIM={HEAD_DIM}"),
        format!("-DPAGE={PAGE_TOKENS}"),
        "--std=c++17".into(),
        "--ptxas-options=-v".into(),
    ]
}

/// The result of compiling the program for one architecture.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The architecture (`sm_80`, ...).
    pub arch: String,
    /// PTX text.
    pub ptx: String,
    /// CUBIN for exactly that architecture.
    pub cubin: Vec<u8>,
    /// NVRTC's log (ptxas register and spill reports).
    pub log: String,
}

impl Compiled {
    /// `(kernel, registers, spill-store bytes)` parsed from ptxas' `-v` report in the log.
    pub fn register_report(&self) -> Vec<(String, u32, u32)> {
        let mut out = Vec::new();
        let mut current: Option<String> = None;
        let mut spill = 0;
        for line in self.log.lines() {
            if let Some(i) = line.find("Compiling entry function '") {
                let rest = &line[i + "Compiling entry function '".len()..];
                current = rest.split('\'').next().map(str::to_string);
                spill = 0;
            } else if let Some(i) = line.find("bytes spill stores") {
                spill = line[..i]
                    .split_whitespace()
                    .last()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some(i) = line.find("Used ") {
                let regs = line[i + 5..]
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok());
                if let (Some(name), Some(regs)) = (current.take(), regs) {
                    out.push((name, regs, spill));
                }
            }
        }
        out
    }
}

/// Why a compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// NVRTC (`libnvrtc.so.13`) could not be loaded.
    #[error("NVRTC (libnvrtc.so.13) was not found on the library path; install the nvidia-cuda-nvrtc wheel (see scripts/ci-nvrtc.sh) or pass --cuda-lib-dir")]
    Missing,
    /// NVRTC returned an error; the log says why.
    #[error("NVRTC failed to compile the kernels for {arch} ({status:?}):\n{log}")]
    Failed {
        /// Architecture.
        arch: String,
        /// NVRTC's status.
        status: sys::nvrtcResult,
        /// Compiler log.
        log: String,
    },
}

/// NVRTC's version `(major, minor)`, or `None` when the library cannot be loaded.
pub fn nvrtc_version() -> Option<(i32, i32)> {
    // SAFETY: probing only dlopens the library; the version call has two out-pointers.
    unsafe {
        if !sys::is_culib_present() {
            return None;
        }
        let (mut major, mut minor) = (0, 0);
        sys::nvrtcVersion(&mut major, &mut minor);
        Some((major, minor))
    }
}

fn log_string(raw: Vec<c_char>) -> String {
    let bytes: Vec<u8> = raw
        .into_iter()
        .take_while(|&c| c != 0)
        .map(|c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Compiles the program for `arch` (`sm_80`, `sm_86`, `sm_90`, `sm_90a`, ...), returning PTX and CUBIN.
pub fn compile(arch: &str) -> Result<Compiled, CompileError> {
    // SAFETY: the probe only dlopens; every later call gets the program created here, which is
    // destroyed exactly once at the end.
    unsafe {
        if !sys::is_culib_present() {
            return Err(CompileError::Missing);
        }
        let src = CString::new(program_source()).expect("kernel source has no NUL byte");
        let name = CString::new("servesim_kernels.cu").expect("no NUL");
        let fail = |status, log: String| CompileError::Failed {
            arch: arch.to_string(),
            status,
            log,
        };
        let prog =
            result::create_program(&src, Some(&name)).map_err(|e| fail(e.0, String::new()))?;
        let opts = compile_options(arch);
        let status = result::compile_program(prog, &opts);
        let log = result::get_program_log(prog)
            .map(log_string)
            .unwrap_or_default();
        if let Err(e) = status {
            let _ = result::destroy_program(prog);
            return Err(fail(e.0, log));
        }
        let ptx = result::get_ptx(prog)
            .map(log_string)
            .map_err(|e| fail(e.0, log.clone()))?;
        let mut size = 0usize;
        sys::nvrtcGetCUBINSize(prog, &mut size)
            .result()
            .map_err(|e| fail(e.0, log.clone()))?;
        let mut cubin = vec![0u8; size];
        sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char)
            .result()
            .map_err(|e| fail(e.0, log.clone()))?;
        let _ = result::destroy_program(prog);
        Ok(Compiled {
            arch: arch.to_string(),
            ptx,
            cubin,
            log,
        })
    }
}

/// Names of the entry points that appear in a PTX text.
pub fn entry_points(ptx: &str) -> Vec<String> {
    ptx.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(".visible .entry ")
                .or_else(|| l.strip_prefix(".entry "))?;
            Some(rest.split('(').next()?.trim().to_string())
        })
        .collect()
}

/// Converts a NUL-terminated C string to an owned `String` (helper for driver error names).
pub fn c_str(p: &CStr) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_name_is_defined_extern_c_in_the_source() {
        let src = program_source();
        for k in KERNEL_NAMES {
            let decl = format!(" {k}(");
            let ok = src.lines().any(|l| {
                (l.contains("extern \"C\" __global__") || l.trim_start().starts_with(k))
                    && (l.contains(&decl) || l.trim_start().starts_with(&format!("{k}(")))
            });
            assert!(ok, "kernel {k} not found");
        }
        assert!(!src.contains("#include"), "kernels must need no headers");
    }

    #[test]
    fn ptxas_register_report_is_parsed() {
        let c = Compiled {
            arch: "sm_90".into(),
            ptx: String::new(),
            cubin: vec![],
            log: "ptxas info    : Compiling entry function 'paged_prefill' for 'sm_90'\n\
                  ptxas info    : Function properties for paged_prefill\n\
                  \x20   8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n\
                  ptxas info    : Used 168 registers, used 0 barriers, 35840 bytes smem\n"
                .into(),
        };
        assert_eq!(
            c.register_report(),
            vec![("paged_prefill".to_string(), 168, 4)]
        );
        let ptx = ".visible .entry rms_norm(\n.param .u64 a\n)\n.visible .entry embedding(";
        assert_eq!(entry_points(ptx), vec!["rms_norm", "embedding"]);
    }
}
