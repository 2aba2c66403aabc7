//! Checking a model description: positive and consistent sizes, known data types, MoE, MLA and
//! local-attention parameters that make sense, and sizes small enough that every count derived
//! from them fits in 64 bits.

use super::model::{MAX_KV_BYTES_PER_TOKEN, MAX_LAYERS, MAX_TOTAL_PARAMS, TORCH_DTYPES};
use super::{CatalogError, ModelSpec};

impl ModelSpec {
    /// Checks internal consistency: positive sizes, heads divide the width, KV heads divide the
    /// query heads, a known `torch_dtype` and `quantization`, sensible MoE/MLA/local-attention
    /// parameters, and sizes within [`MAX_LAYERS`], [`MAX_TOTAL_PARAMS`] and
    /// [`MAX_KV_BYTES_PER_TOKEN`].
    pub fn validate(&self) -> Result<(), CatalogError> {
        let bad = |why: String| CatalogError::InvalidModel {
            name: self.name.clone(),
            why,
        };
        for (field, v) in [
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("head_dim", self.head_dim.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(bad(format!("`{field}` must be positive")));
            }
        }
        if self.num_hidden_layers > MAX_LAYERS {
            return Err(bad(format!(
                "num_hidden_layers = {} is more than the {MAX_LAYERS} servesim accepts; check the sizes",
                self.num_hidden_layers
            )));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {} (give `head_dim` explicitly)",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if let Some(g) = &self.generation {
            g.validate()
                .map_err(|why| bad(format!("[generation]: {why}")))?;
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(bad(format!(
                "rope_theta = {} must be a positive number",
                self.rope_theta
            )));
        }
        if !(self.partial_rotary_factor > 0.0 && self.partial_rotary_factor <= 1.0) {
            return Err(bad(format!(
                "partial_rotary_factor = {} must lie in (0, 1]",
                self.partial_rotary_factor
            )));
        }
        self.validate_precision().map_err(bad)?;
        self.validate_moe().map_err(bad)?;
        self.validate_mla_and_window().map_err(bad)?;
        self.validate_size().map_err(bad)
    }

    fn validate_precision(&self) -> Result<(), String> {
        if !TORCH_DTYPES.contains(&self.torch_dtype.as_str()) {
            return Err(format!(
                "torch_dtype `{}` is not supported; expected {}",
                self.torch_dtype,
                TORCH_DTYPES.join(", ")
            ));
        }
        match self.quantization.as_deref() {
            None if self.unquantized_attention => Err(
                "`unquantized_attention` describes a quantized checkpoint; set `quantization = \"fp8\"` or remove it"
                    .into(),
            ),
            Some(q) if !q.eq_ignore_ascii_case("fp8") => Err(format!(
                "quantization `{q}` is not supported; servesim models fp8 checkpoints (set `quantization = \"fp8\"` or remove it)"
            )),
            _ => Ok(()),
        }
    }

    fn validate_moe(&self) -> Result<(), String> {
        let Some(m) = &self.moe else {
            return Ok(());
        };
        for (field, v) in [
            ("moe.num_experts", m.num_experts),
            ("moe.experts_per_token", m.experts_per_token),
            ("moe.expert_intermediate_size", m.expert_intermediate_size),
            ("moe.layer_step", m.layer_step),
        ] {
            if v == 0 {
                return Err(format!("`{field}` must be positive"));
            }
        }
        if m.experts_per_token > m.num_experts {
            return Err(format!(
                "moe.experts_per_token = {} is more than moe.num_experts = {}",
                m.experts_per_token, m.num_experts
            ));
        }
        if (m.num_shared_experts == 0) != (m.shared_expert_intermediate_size == 0) {
            return Err(format!(
                "moe.num_shared_experts = {} and moe.shared_expert_intermediate_size = {} must both be zero or both positive",
                m.num_shared_experts, m.shared_expert_intermediate_size
            ));
        }
        // The first MoE layer is first_dense_layers + layer_step - 1.
        if u64::from(m.first_dense_layers) + u64::from(m.layer_step)
            > u64::from(self.num_hidden_layers)
        {
            return Err(format!(
                "moe.first_dense_layers = {} and moe.layer_step = {} leave no MoE layer among the {} layers",
                m.first_dense_layers, m.layer_step, self.num_hidden_layers
            ));
        }
        Ok(())
    }

    fn validate_mla_and_window(&self) -> Result<(), String> {
        if let Some(m) = &self.mla {
            for (field, v) in [
                ("mla.q_lora_rank", m.q_lora_rank.unwrap_or(1)),
                ("mla.kv_lora_rank", m.kv_lora_rank),
                ("mla.qk_nope_head_dim", m.qk_nope_head_dim),
                ("mla.qk_rope_head_dim", m.qk_rope_head_dim),
                ("mla.v_head_dim", m.v_head_dim),
            ] {
                if v == 0 {
                    return Err(format!("`{field}` must be positive"));
                }
            }
        }
        match &self.local_attention {
            Some(l) if l.window_tokens == 0 => {
                Err("`local_attention.window_tokens` must be positive".into())
            }
            _ => Ok(()),
        }
    }

    /// Refuses sizes whose parameter count or KV bytes per token are absurd. The counts are
    /// upper bounds computed in 128 bits (every layer with both a dense MLP and its experts), so
    /// nothing here can overflow, and every count the rest of servesim derives in 64 bits is
    /// smaller.
    fn validate_size(&self) -> Result<(), String> {
        let w = u128::from;
        let (e, layers, h, kv) = (
            w(self.hidden_size),
            w(self.num_hidden_layers),
            w(self.num_attention_heads),
            w(self.num_key_value_heads),
        );
        let d = w(self.head_dim());
        let (attn, kv_per_layer) = match &self.mla {
            None => (e * d * (2 * h + 2 * kv) + d * (h + 2 * kv), 2 * d * kv),
            Some(m) => {
                let (q_rank, kv_rank) = (w(m.q_lora_rank.unwrap_or(0)), w(m.kv_lora_rank));
                let (nope, rope, v) = (
                    w(m.qk_nope_head_dim),
                    w(m.qk_rope_head_dim),
                    w(m.v_head_dim),
                );
                let q = if q_rank > 0 {
                    e * q_rank + q_rank * h * (nope + rope)
                } else {
                    e * h * (nope + rope)
                };
                (
                    q + e * (kv_rank + rope) + kv_rank * h * (nope + v) + h * v * e,
                    kv_rank + rope,
                )
            }
        };
        let mlp = 3 * e * w(self.intermediate_size);
        let experts = self.moe.as_ref().map_or(0, |m| {
            3 * e
                * (w(m.num_experts) * w(m.expert_intermediate_size)
                    + w(m.num_shared_experts) * w(m.shared_expert_intermediate_size))
                + e * w(m.num_experts)
        });
        let params = layers * (attn + mlp + experts + 2 * e)
            + 2 * w(self.vocab_size) * e
            + e
            + u128::from(self.extra_params);
        if params > u128::from(MAX_TOTAL_PARAMS) {
            return Err(format!(
                "its sizes give about {:.3e} parameters (num_hidden_layers {}, hidden_size {}, intermediate_size {}, vocab_size {}{}), more than the {:.2e} servesim accepts; check the sizes",
                params as f64,
                self.num_hidden_layers,
                self.hidden_size,
                self.intermediate_size,
                self.vocab_size,
                self.moe.as_ref().map_or(String::new(), |m| format!(
                    ", {} experts of {}",
                    m.num_experts, m.expert_intermediate_size
                )),
                MAX_TOTAL_PARAMS as f64
            ));
        }
        let kv_bytes = 2 * kv_per_layer * layers;
        if kv_bytes > u128::from(MAX_KV_BYTES_PER_TOKEN) {
            return Err(format!(
                "its sizes give {kv_bytes} KV-cache bytes per token, more than the {MAX_KV_BYTES_PER_TOKEN} servesim accepts; check head_dim, num_key_value_heads and num_hidden_layers"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::catalog::Catalog;

    /// Loads a catalog override holding one model entry: Mixtral-8x7B's with `edit` applied to
    /// its TOML text; returns the error.
    fn load_error(edit: impl Fn(String) -> String) -> String {
        let text = include_str!("../../../data/catalog/models/mistralai/Mixtral-8x7B-v0.1.toml");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models/test/bad.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            edit(text.replace("mistralai/Mixtral-8x7B-v0.1", "test/bad")),
        )
        .unwrap();
        let e = Catalog::with_overrides(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "the error names the file: {e}");
        e
    }

    #[test]
    fn catalog_entries_are_checked_when_loaded() {
        // (text in Mixtral-8x7B's entry, its replacement, the expected error).
        let cases = [
            (
                "experts_per_token = 2",
                "experts_per_token = 9",
                "experts_per_token = 9 is more than moe.num_experts = 8",
            ),
            (
                "num_experts = 8",
                "num_experts = 0",
                "`moe.num_experts` must be positive",
            ),
            (
                "num_shared_experts = 0",
                "num_shared_experts = 1",
                "both be zero or both positive",
            ),
            (
                "first_dense_layers = 0",
                "first_dense_layers = 32",
                "leave no MoE layer",
            ),
            (
                "torch_dtype = \"bfloat16\"",
                "torch_dtype = \"int3\"",
                "torch_dtype `int3` is not supported",
            ),
            (
                "torch_dtype = \"bfloat16\"",
                "quantization = \"awq\"",
                "quantization `awq` is not supported",
            ),
            (
                "torch_dtype = \"bfloat16\"",
                "unquantized_attention = true",
                "`unquantized_attention` describes a quantized checkpoint",
            ),
            (
                "partial_rotary_factor = 1.0",
                "partial_rotary_factor = 0.0",
                "partial_rotary_factor = 0 must lie in (0, 1]",
            ),
            (
                "rope_theta = 1000000.0",
                "rope_theta = -1.0",
                "rope_theta = -1 must be a positive number",
            ),
            (
                "num_hidden_layers = 32",
                "num_hidden_layers = 70000",
                "more than the 65536",
            ),
            (
                "hidden_size = 4096",
                "hidden_size = 4000000000",
                "parameters",
            ),
            (
                "[moe]",
                "head_dim = 0\n[moe]",
                "`head_dim` must be positive",
            ),
        ];
        for (from, to, expected) in cases {
            let e = load_error(|t| {
                assert!(t.contains(from), "{from}");
                t.replacen(from, to, 1)
            });
            assert!(e.contains(expected), "expected `{expected}` in: {e}");
        }
        let mla = |t: String| {
            format!("{t}\n[mla]\nkv_lora_rank = 0\nqk_nope_head_dim = 128\nqk_rope_head_dim = 64\nv_head_dim = 128\n")
        };
        assert!(load_error(mla).contains("`mla.kv_lora_rank` must be positive"));
        let window = |t: String| {
            format!("{t}\n[local_attention]\nkind = \"sliding_window\"\nwindow_tokens = 0\n")
        };
        assert!(load_error(window).contains("`local_attention.window_tokens` must be positive"));
    }
}
