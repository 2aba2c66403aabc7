//! Numeric precision of a deployment: the bytes of a weight and of a cached key/value element,
//! and whether the linear layers run on FP8 tensor cores.
//!
//! The flags follow vLLM's: `--dtype` (`auto`, `bfloat16`, `float16`) chooses the 16-bit type of
//! activations and unquantized weights, `--quantization fp8` quantizes the linear layers' weights
//! to FP8 at load time (a checkpoint published in FP8 is FP8 without the flag), and
//! `--kv-cache-dtype fp8` stores the KV cache in FP8. Embeddings, the LM head, norms and routers stay
//! 16-bit, as in vLLM.
//!
//! On GPUs with FP8 tensor cores (Hopper, Ada, Blackwell) FP8 linear layers run W8A8: activations
//! are quantized too, and GEMMs reach the FP8 peak (twice the BF16 one). Elsewhere (Ampere) vLLM
//! runs FP8 weights weight-only (dequantized to 16 bits inside the GEMM): the weights' bytes halve,
//! the FLOP/s stay those of BF16.

use serde::{Deserialize, Serialize};

use crate::catalog::{DeviceSpec, ModelSpec};

/// The 16-bit activation and weight type (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// The checkpoint's `torch_dtype` (float32 checkpoints run in bfloat16).
    #[default]
    Auto,
    /// bfloat16.
    Bfloat16,
    /// float16.
    Float16,
}

/// Weight quantization (`--quantization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// As published: FP8 for FP8 checkpoints, 16-bit otherwise.
    #[default]
    Auto,
    /// No quantization (an error for a checkpoint published in FP8).
    None,
    /// FP8 weights of every linear layer (quantized at load time when the checkpoint is 16-bit).
    Fp8,
}

/// KV-cache element type (`--kv-cache-dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheDType {
    /// The activation type (16 bits).
    #[default]
    Auto,
    /// FP8 (E4M3): half the bytes per cached element.
    Fp8,
}

/// The precision choices of a replica (`[replica]` keys `dtype`, `quantization`, `kv_cache_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrecisionConfig {
    /// `--dtype`.
    pub dtype: DType,
    /// `--quantization`.
    pub quantization: Quantization,
    /// `--kv-cache-dtype`.
    pub kv_cache_dtype: KvCacheDType,
}

/// The precision a replica runs at, resolved against its model and GPU.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// Bytes per weight of the linear layers (attention projections, MLPs, experts): 1 for FP8, 2.
    pub linear_weight_bytes: u64,
    /// Bytes per weight of the embedding, LM head, norms and routers (always 16-bit).
    pub other_weight_bytes: u64,
    /// Bytes per activation element (16-bit).
    pub activation_bytes: u64,
    /// Bytes per cached key/value element: 1 for an FP8 KV cache, 2.
    pub kv_bytes: u64,
    /// Linear layers run W8A8 on FP8 tensor cores (FP8 weights on a GPU with an FP8 peak).
    pub fp8_compute: bool,
}

impl Default for Precision {
    fn default() -> Self {
        Precision::BF16
    }
}

/// Why a precision choice is not possible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    /// `--quantization none` on an FP8 checkpoint.
    #[error("{model} is published with FP8 weights; `--quantization none` cannot serve it in 16 bits (use the model's 16-bit checkpoint, or drop the flag)")]
    CannotDequantize {
        /// Model name.
        model: String,
    },
    /// A `torch_dtype` we do not know.
    #[error("{model}: torch_dtype `{dtype}` is not supported; expected bfloat16, float16 or float32 (set `torch_dtype` in the model's config.json or catalog entry)")]
    UnknownTorchDType {
        /// Model name.
        model: String,
        /// The value found.
        dtype: String,
    },
    /// A checkpoint quantization we do not know.
    #[error("{model}: quantization `{method}` is not supported; servesim models fp8 checkpoints (set `quantization = \"fp8\"` or remove it)")]
    UnknownQuantization {
        /// Model name.
        model: String,
        /// The value found.
        method: String,
    },
}

impl Precision {
    /// Everything 16-bit: weights, activations and KV cache.
    pub const BF16: Precision = Precision {
        linear_weight_bytes: 2,
        other_weight_bytes: 2,
        activation_bytes: 2,
        kv_bytes: 2,
        fp8_compute: false,
    };

    /// The precision of `model` served on `device` with the choices of `cfg`.
    pub fn resolve(
        model: &ModelSpec,
        device: &DeviceSpec,
        cfg: &PrecisionConfig,
    ) -> Result<Precision, PrecisionError> {
        check_torch_dtype(model)?;
        let checkpoint_fp8 = match model.quantization.as_deref() {
            None => false,
            Some(q) if q.eq_ignore_ascii_case("fp8") => true,
            Some(q) => {
                return Err(PrecisionError::UnknownQuantization {
                    model: model.name.clone(),
                    method: q.to_string(),
                })
            }
        };
        let fp8_weights = match cfg.quantization {
            Quantization::Auto => checkpoint_fp8,
            Quantization::Fp8 => true,
            Quantization::None if checkpoint_fp8 => {
                return Err(PrecisionError::CannotDequantize {
                    model: model.name.clone(),
                })
            }
            Quantization::None => false,
        };
        Ok(Precision {
            linear_weight_bytes: if fp8_weights { 1 } else { 2 },
            other_weight_bytes: 2,
            activation_bytes: 2,
            kv_bytes: match cfg.kv_cache_dtype {
                KvCacheDType::Auto => 2,
                KvCacheDType::Fp8 => 1,
            },
            fp8_compute: fp8_weights && device.peak_fp8_flops.is_some(),
        })
    }

    /// Peak FLOP/s of the linear layers on `device`: the FP8 peak when they run W8A8, else BF16.
    pub fn linear_peak_flops(&self, device: &DeviceSpec) -> f64 {
        match (self.fp8_compute, device.peak_fp8_flops) {
            (true, Some(p)) => p,
            _ => device.peak_bf16_flops,
        }
    }

    /// A short label: `bf16`, `fp8 (W8A8)`, `fp8 weight-only`, with `, fp8 KV` when the cache is FP8.
    pub fn label(&self) -> String {
        let w = match (self.linear_weight_bytes, self.fp8_compute) {
            (1, true) => "fp8 (W8A8)",
            (1, false) => "fp8 weight-only",
            _ => "bf16",
        };
        if self.kv_bytes == 1 {
            format!("{w}, fp8 KV cache")
        } else {
            w.to_string()
        }
    }
}

/// Checks that the model's `torch_dtype` is one we model.
fn check_torch_dtype(model: &ModelSpec) -> Result<(), PrecisionError> {
    match model.torch_dtype.as_str() {
        "bfloat16" | "float16" | "float32" | "bf16" | "fp16" => Ok(()),
        other => Err(PrecisionError::UnknownTorchDType {
            model: model.name.clone(),
            dtype: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn fp8_is_w8a8_on_hopper_and_weight_only_on_ampere() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-3.1-8B").unwrap();
        let fp8 = PrecisionConfig {
            quantization: Quantization::Fp8,
            ..Default::default()
        };
        let h = Precision::resolve(&m, &cat.device("h100").unwrap(), &fp8).unwrap();
        assert_eq!((h.linear_weight_bytes, h.fp8_compute), (1, true));
        let h100 = cat.device("h100").unwrap();
        assert_eq!(h.linear_peak_flops(&h100), h100.peak_fp8_flops.unwrap());
        let a = Precision::resolve(&m, &cat.device("a100").unwrap(), &fp8).unwrap();
        assert_eq!((a.linear_weight_bytes, a.fp8_compute), (1, false));
        let a100 = cat.device("a100").unwrap();
        assert_eq!(a.linear_peak_flops(&a100), a100.peak_bf16_flops);
        let plain = Precision::resolve(&m, &h100, &PrecisionConfig::default()).unwrap();
        assert_eq!(plain, Precision::BF16);
        let kv8 = PrecisionConfig {
            kv_cache_dtype: KvCacheDType::Fp8,
            ..Default::default()
        };
        assert_eq!(Precision::resolve(&m, &h100, &kv8).unwrap().kv_bytes, 1);
    }

    #[test]
    fn bad_dtypes_and_dequantizing_fp8_checkpoints_are_errors() {
        let cat = Catalog::builtin();
        let h100 = cat.device("h100").unwrap();
        let mut m = cat.model("meta-llama/Llama-3.1-8B").unwrap();
        m.torch_dtype = "int3".into();
        let e = Precision::resolve(&m, &h100, &PrecisionConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("int3") && e.contains("torch_dtype"), "{e}");
        m.torch_dtype = "bfloat16".into();
        m.quantization = Some("fp8".into());
        let none = PrecisionConfig {
            quantization: Quantization::None,
            ..Default::default()
        };
        let e = Precision::resolve(&m, &h100, &none)
            .unwrap_err()
            .to_string();
        assert!(e.contains("FP8 weights"), "{e}");
        m.quantization = Some("awq".into());
        let e = Precision::resolve(&m, &h100, &PrecisionConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("awq"), "{e}");
    }
}
