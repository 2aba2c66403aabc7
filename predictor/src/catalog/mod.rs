//! The catalog of models, devices and nodes, shared by the profiler, the predictor and the simulator.
//!
//! The built-in catalog is the TOML files under `data/catalog/` (one file per entry), embedded into
//! the binaries at build time. [`Catalog::with_overrides`] layers a user directory of the same layout
//! on top, and [`Catalog::model`] also accepts the path of a Hugging Face `config.json`.

mod device;
mod footprint;
mod hf_config;
mod model;
#[cfg(test)]
mod model_cards;
mod node;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use device::DeviceSpec;
pub use footprint::MoeShard;
pub use hf_config::SUPPORTED_ARCHITECTURES;
pub use model::{
    GenerationDefaults, LocalAttention, LocalAttentionKind, MlaSpec, ModelSpec, MoeSpec, Norm,
    BYTES_PER_ELEMENT, MAX_KV_BYTES_PER_TOKEN, MAX_LAYERS, MAX_TOTAL_PARAMS, TORCH_DTYPES,
};
pub use node::{Link, NodeSpec};

include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));

/// What can go wrong when reading or querying the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file was read but its contents are wrong.
    #[error("{path}: {why}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        why: String,
    },
    /// A `config.json` names an architecture we cannot model.
    #[error("{path}: architecture `{architecture}` is not supported; servesim reads the config.json of {}. Use a catalog model or a config.json of one of those", SUPPORTED_ARCHITECTURES.join(", "))]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// The architecture it names.
        architecture: String,
    },
    /// A model description is internally inconsistent.
    #[error("model `{name}`: {why}")]
    InvalidModel {
        /// The model.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A name is not in the catalog.
    #[error("unknown {kind} `{name}`{nearest}; known {kind}s: {known}{hint}")]
    Unknown {
        /// `model`, `device` or `node`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// ` (did you mean `…`?)` for the closest known name ([`did_you_mean`]), or empty.
        nearest: String,
        /// The names that exist.
        known: String,
        /// Extra advice.
        hint: &'static str,
    },
}

/// The catalog: models, devices and nodes by name, in name order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: BTreeMap<String, ModelSpec>,
    devices: BTreeMap<String, DeviceSpec>,
    nodes: BTreeMap<String, NodeSpec>,
}

fn parse_entry<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, CatalogError> {
    toml::from_str(text).map_err(|e| CatalogError::Parse {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

impl Catalog {
    /// The catalog built into the binary (`data/catalog/` at build time).
    pub fn builtin() -> Self {
        let mut cat = Catalog::default();
        for (rel, text) in EMBEDDED {
            let path = Path::new("data/catalog").join(rel);
            cat.insert(&path, rel, text)
                .unwrap_or_else(|e| panic!("built-in catalog is invalid (a build-time bug): {e}"));
        }
        cat
    }

    /// The built-in catalog with every `*.toml` under `dir` (same layout: `models/`, `devices/`,
    /// `nodes/`) added on top; an entry with an existing name replaces it.
    pub fn with_overrides(dir: &Path) -> Result<Self, CatalogError> {
        let mut cat = Self::builtin();
        let mut files = Vec::new();
        collect_toml(dir, &mut files)?;
        for path in files {
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&path).map_err(|e| CatalogError::Io {
                path: path.clone(),
                source: e,
            })?;
            cat.insert(&path, &rel, &text)?;
        }
        Ok(cat)
    }

    fn insert(&mut self, path: &Path, rel: &str, text: &str) -> Result<(), CatalogError> {
        if rel.starts_with("models/") {
            let m: ModelSpec = parse_entry(path, text)?;
            m.validate().map_err(|e| CatalogError::Parse {
                path: path.to_path_buf(),
                why: e.to_string(),
            })?;
            self.models.insert(m.name.clone(), m);
        } else if rel.starts_with("devices/") {
            let d: DeviceSpec = parse_entry(path, text)?;
            self.devices.insert(d.name.clone(), d);
        } else if rel.starts_with("nodes/") {
            let n: NodeSpec = parse_entry(path, text)?;
            self.nodes.insert(n.name.clone(), n);
        } else {
            return Err(CatalogError::Parse {
                path: path.to_path_buf(),
                why: "catalog files belong under models/, devices/ or nodes/".into(),
            });
        }
        Ok(())
    }

    /// A model by catalog name (`meta-llama/Llama-2-7b-hf`; the part after the organisation is also
    /// accepted when unambiguous) or by the path of a Hugging Face `config.json`.
    pub fn model(&self, name_or_path: &str) -> Result<ModelSpec, CatalogError> {
        if let Some(m) = self.models.get(name_or_path) {
            return Ok(m.clone());
        }
        let short: Vec<&ModelSpec> = self
            .models
            .values()
            .filter(|m| m.name.rsplit('/').next() == Some(name_or_path))
            .collect();
        if short.len() == 1 {
            return Ok(short[0].clone());
        }
        let path = Path::new(name_or_path);
        if name_or_path.ends_with(".json") || path.is_file() {
            return ModelSpec::from_hf_config(path);
        }
        if path.is_dir() && path.join("config.json").is_file() {
            return ModelSpec::from_hf_config(&path.join("config.json"));
        }
        Err(CatalogError::Unknown {
            kind: "model",
            name: name_or_path.to_string(),
            nearest: did_you_mean(name_or_path, self.models.keys()),
            known: self.models.keys().cloned().collect::<Vec<_>>().join(", "),
            hint: "; or give the path of a Hugging Face config.json",
        })
    }

    /// A device by name (`a100`, `h100`, ...).
    pub fn device(&self, name: &str) -> Result<DeviceSpec, CatalogError> {
        self.devices
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| CatalogError::Unknown {
                kind: "device",
                name: name.to_string(),
                nearest: did_you_mean(name, self.devices.keys()),
                known: self.devices.keys().cloned().collect::<Vec<_>>().join(", "),
                hint: "; for another GPU, add a TOML file under data/catalog/devices/ and rebuild (docs/catalog.md)",
            })
    }

    /// A node by name (`a100_dgx`, ...).
    pub fn node(&self, name: &str) -> Result<NodeSpec, CatalogError> {
        self.nodes
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| CatalogError::Unknown {
                kind: "node",
                name: name.to_string(),
                nearest: did_you_mean(name, self.nodes.keys()),
                known: self.nodes.keys().cloned().collect::<Vec<_>>().join(", "),
                hint: "",
            })
    }

    /// The default node for a device: its DGX/HGX node when the catalog has one, else the first
    /// node of that device, else `None`.
    pub fn default_node_for(&self, device: &str) -> Option<NodeSpec> {
        let dgx = format!("{device}_dgx");
        self.nodes
            .get(&dgx)
            .or_else(|| self.nodes.values().find(|n| n.device == device))
            .cloned()
    }

    /// All models, in name order.
    pub fn models(&self) -> impl Iterator<Item = &ModelSpec> {
        self.models.values()
    }

    /// All devices, in name order.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceSpec> {
        self.devices.values()
    }

    /// All nodes, in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.values()
    }
}

/// ` (did you mean `NAME`?)` for the known name closest to `name` (case-insensitive edit distance,
/// also against the part after an organisation's `/`), or an empty string when none is close.
pub fn did_you_mean<'a>(name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let q = name.to_ascii_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for k in known {
        let full = k.to_ascii_lowercase();
        let short = full.rsplit('/').next().unwrap_or(&full);
        let score = strsim::normalized_damerau_levenshtein(&q, &full)
            .max(strsim::normalized_damerau_levenshtein(&q, short));
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, k));
        }
    }
    match best {
        Some((score, k)) if score >= 0.5 => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CatalogError> {
    let rd = std::fs::read_dir(dir).map_err(|e| CatalogError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_toml(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_every_required_entry() {
        let cat = Catalog::builtin();
        for m in [
            "meta-llama/Llama-2-7b-hf",
            "meta-llama/Llama-2-70b-hf",
            "meta-llama/Meta-Llama-3-8B",
            "meta-llama/Meta-Llama-3-70B",
            "meta-llama/Llama-3.1-8B",
            "meta-llama/Llama-3.1-70B",
            "codellama/CodeLlama-34b-Instruct-hf",
            "Qwen/Qwen-72B",
            "Qwen/Qwen2.5-7B",
            "internlm/internlm-20b",
            "microsoft/phi-2",
            "mistralai/Mistral-7B-v0.1",
        ] {
            cat.model(m).unwrap();
        }
        for d in ["a100", "h100", "h200", "a40", "l40s", "b200"] {
            cat.device(d).unwrap();
        }
        for n in [
            "a100_dgx",
            "h100_dgx",
            "h200_dgx",
            "a100_pairwise_nvlink",
            "h100_pairwise_nvlink",
            "a40_pairwise_nvlink",
        ] {
            let node = cat.node(n).unwrap();
            cat.device(&node.device).unwrap();
        }
    }

    #[test]
    fn parameter_counts_match_published_sizes() {
        // Vidur's per-layer weight counts (docs/design.md §2), times the layer count.
        let cat = Catalog::builtin();
        let l7 = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        assert_eq!(l7.params_per_layer_per_device(1) * 32, 6_476_005_376);
        let l70 = cat.model("Llama-2-70b-hf").unwrap();
        assert_eq!(l70.params_per_layer_per_device(1) * 80, 68_451_041_280);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let cat = Catalog::builtin();
        let e = cat.model("llama-9000").unwrap_err().to_string();
        assert!(
            e.contains("unknown model `llama-9000`") && e.contains("meta-llama/Llama-2-7b-hf"),
            "{e}"
        );
        let e = cat.device("tpu").unwrap_err().to_string();
        assert!(
            e.contains("unknown device `tpu`") && e.contains("a100"),
            "{e}"
        );
        assert!(
            !e.contains("did you mean") && !e.contains("--catalog"),
            "{e}"
        );
    }

    #[test]
    fn typos_get_the_nearest_name() {
        let cat = Catalog::builtin();
        let e = cat.model("Llama-2-7b").unwrap_err().to_string();
        assert!(
            e.contains("did you mean `meta-llama/Llama-2-7b-hf`?"),
            "{e}"
        );
        let e = cat
            .model("meta-llama/Meta-Llama-3-8b")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("did you mean `meta-llama/Meta-Llama-3-8B`?"),
            "{e}"
        );
        let e = cat.device("h10").unwrap_err().to_string();
        assert!(e.contains("did you mean `h100`?"), "{e}");
        let e = cat.node("h100_dgxx").unwrap_err().to_string();
        assert!(e.contains("did you mean `h100_dgx`?"), "{e}");
    }

    #[test]
    fn reads_hf_config_json_and_rejects_other_architectures() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"architectures":["MistralForCausalLM"],"num_hidden_layers":32,"num_attention_heads":32,
               "num_key_value_heads":8,"hidden_size":4096,"intermediate_size":14336,"vocab_size":32000,
               "max_position_embeddings":32768,"rope_theta":10000.0,"hidden_act":"silu"}"#,
        )
        .unwrap();
        let m = Catalog::builtin().model(p.to_str().unwrap()).unwrap();
        assert_eq!((m.num_key_value_heads, m.head_dim()), (8, 128));
        std::fs::write(&p, r#"{"architectures":["GPT2LMHeadModel"]}"#).unwrap();
        let e = Catalog::builtin()
            .model(p.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("GPT2LMHeadModel") && e.contains("not supported"),
            "{e}"
        );
        std::fs::write(
            &p,
            r#"{"architectures":["LlamaForCausalLM"],"num_hidden_layers":2}"#,
        )
        .unwrap();
        let e = Catalog::builtin()
            .model(p.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("num_attention_heads"), "{e}");
    }
}
