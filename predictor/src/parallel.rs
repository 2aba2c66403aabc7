//! Tensor- and pipeline-parallel layout of one replica, and its validation against a model.

use serde::{Deserialize, Serialize};

use crate::catalog::{ModelSpec, NodeSpec};

/// How one replica of a model is split over GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parallelism {
    /// Tensor-parallel degree (GPUs sharing every layer).
    pub tp: u32,
    /// Pipeline-parallel stages (consecutive groups of layers).
    pub pp: u32,
    /// Expert-parallel degree of MoE layers: the experts are spread over `ep` GPUs of the
    /// tensor-parallel group (each holds `num_experts / ep` experts, split `tp / ep` ways), with
    /// all-to-all dispatch and combine. 1: experts are tensor-parallel like the dense MLP.
    #[serde(default = "one")]
    pub ep: u32,
}

fn one() -> u32 {
    1
}

/// Why a layout does not fit a model or node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParallelismError {
    /// A degree of zero.
    #[error("{what} must be at least 1")]
    Zero {
        /// `tensor-parallel degree` or `pipeline stages`.
        what: &'static str,
    },
    /// TP does not divide the query heads (or the KV heads, unless it is a multiple of them).
    #[error("tensor-parallel degree {tp} does not divide the {heads} {kind} heads of {model}; use a TP degree that divides {heads} (e.g. {suggest})")]
    Heads {
        /// TP asked for.
        tp: u32,
        /// Head count.
        heads: u32,
        /// `query` or `key/value`.
        kind: &'static str,
        /// Model name.
        model: String,
        /// Valid TP degrees.
        suggest: String,
    },
    /// TP does not divide a hidden width.
    #[error("tensor-parallel degree {tp} does not divide {field} = {value} of {model}")]
    Width {
        /// TP asked for.
        tp: u32,
        /// The width's config field.
        field: &'static str,
        /// Its value.
        value: u32,
        /// Model name.
        model: String,
    },
    /// More stages than layers.
    #[error("{pp} pipeline stages is more than the {layers} layers of {model}; use at most {layers} stages")]
    TooManyStages {
        /// PP asked for.
        pp: u32,
        /// Layer count.
        layers: u32,
        /// Model name.
        model: String,
    },
    /// Layers do not split evenly.
    #[error("{pp} pipeline stages do not divide the {layers} layers of {model} evenly; use a stage count that divides {layers} (e.g. {suggest})")]
    UnevenStages {
        /// PP asked for.
        pp: u32,
        /// Layer count.
        layers: u32,
        /// Model name.
        model: String,
        /// Valid stage counts.
        suggest: String,
    },
    /// Expert parallelism asked for a dense model.
    #[error("expert parallelism (--ep {ep}) needs a mixture-of-experts model; {model} is dense (use --ep 1)")]
    NotMoe {
        /// EP asked for.
        ep: u32,
        /// Model name.
        model: String,
    },
    /// EP does not divide TP.
    #[error("expert-parallel degree {ep} must divide the tensor-parallel degree {tp} (experts are spread over GPUs of the TP group); use --ep in {suggest}")]
    EpTp {
        /// EP asked for.
        ep: u32,
        /// TP.
        tp: u32,
        /// Valid EP degrees.
        suggest: String,
    },
    /// EP does not divide the experts.
    #[error("expert-parallel degree {ep} does not divide the {experts} experts of {model}; use --ep in {suggest}")]
    EpExperts {
        /// EP asked for.
        ep: u32,
        /// Routed experts.
        experts: u32,
        /// Model name.
        model: String,
        /// Valid EP degrees.
        suggest: String,
    },
    /// A TP group spanning nodes.
    #[error("tensor-parallel degree {tp} is larger than the {per_node} GPUs of a {node} node; tensor parallelism stays within a node")]
    TpBeyondNode {
        /// TP asked for.
        tp: u32,
        /// GPUs per node.
        per_node: u32,
        /// Node name.
        node: String,
    },
}

fn divisors(n: u32) -> String {
    (1..=n)
        .filter(|d| n.is_multiple_of(*d))
        .take(6)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Parallelism {
    /// A layout of `tp` × `pp` (experts tensor-parallel, `ep` = 1).
    pub fn new(tp: u32, pp: u32) -> Self {
        Parallelism { tp, pp, ep: 1 }
    }

    /// The same layout with MoE experts spread over `ep` GPUs of the tensor-parallel group.
    pub fn with_ep(self, ep: u32) -> Self {
        Parallelism { ep, ..self }
    }

    /// Tensor-parallel degree inside each expert (`tp / ep`).
    pub fn expert_tp(&self) -> u32 {
        (self.tp / self.ep.max(1)).max(1)
    }

    /// GPUs per replica.
    pub fn world_size(&self) -> u32 {
        self.tp * self.pp
    }

    /// Layers on each stage (the layout must have been validated).
    pub fn layers_per_stage(&self, model: &ModelSpec) -> u32 {
        model.num_hidden_layers / self.pp
    }

    /// Checks the layout against the model (and the node, when given).
    pub fn validate(
        &self,
        model: &ModelSpec,
        node: Option<&NodeSpec>,
    ) -> Result<(), ParallelismError> {
        if self.tp == 0 {
            return Err(ParallelismError::Zero {
                what: "tensor-parallel degree",
            });
        }
        if self.pp == 0 {
            return Err(ParallelismError::Zero {
                what: "pipeline stages",
            });
        }
        let name = model.name.clone();
        if self.ep == 0 {
            return Err(ParallelismError::Zero {
                what: "expert-parallel degree",
            });
        }
        if self.ep > 1 {
            let Some(moe) = &model.moe else {
                return Err(ParallelismError::NotMoe {
                    ep: self.ep,
                    model: name,
                });
            };
            if !self.tp.is_multiple_of(self.ep) {
                return Err(ParallelismError::EpTp {
                    ep: self.ep,
                    tp: self.tp,
                    suggest: divisors(self.tp),
                });
            }
            if !moe.num_experts.is_multiple_of(self.ep) {
                return Err(ParallelismError::EpExperts {
                    ep: self.ep,
                    experts: moe.num_experts,
                    model: name,
                    suggest: divisors(moe.num_experts),
                });
            }
        }
        if !model.num_attention_heads.is_multiple_of(self.tp) {
            return Err(ParallelismError::Heads {
                tp: self.tp,
                heads: model.num_attention_heads,
                kind: "query",
                model: name,
                suggest: divisors(model.num_attention_heads),
            });
        }
        let kv = model.num_key_value_heads;
        if !kv.is_multiple_of(self.tp) && !self.tp.is_multiple_of(kv) {
            return Err(ParallelismError::Heads {
                tp: self.tp,
                heads: kv,
                kind: "key/value",
                model: name,
                suggest: divisors(kv),
            });
        }
        let mut widths = vec![("hidden_size", model.hidden_size, self.tp)];
        if model.num_dense_mlp_layers() > 0 {
            widths.push(("intermediate_size", model.intermediate_size, self.tp));
        }
        if let Some(moe) = &model.moe {
            widths.push((
                "moe expert_intermediate_size",
                moe.expert_intermediate_size,
                self.expert_tp(),
            ));
            if moe.num_shared_experts > 0 {
                widths.push((
                    "moe shared_expert_intermediate_size",
                    moe.shared_expert_intermediate_size,
                    self.tp,
                ));
            }
        }
        for (field, value, tp) in widths {
            if value % tp != 0 {
                return Err(ParallelismError::Width {
                    tp,
                    field,
                    value,
                    model: name,
                });
            }
        }
        let layers = model.num_hidden_layers;
        if self.pp > layers {
            return Err(ParallelismError::TooManyStages {
                pp: self.pp,
                layers,
                model: name,
            });
        }
        if !layers.is_multiple_of(self.pp) {
            return Err(ParallelismError::UnevenStages {
                pp: self.pp,
                layers,
                model: name,
                suggest: divisors(layers),
            });
        }
        if let Some(node) = node {
            if self.tp > node.devices_per_node {
                return Err(ParallelismError::TpBeyondNode {
                    tp: self.tp,
                    per_node: node.devices_per_node,
                    node: node.name.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn rejects_tp_that_does_not_divide_heads_and_too_many_stages() {
        let cat = Catalog::builtin();
        let m = cat.model("meta-llama/Llama-2-7b-hf").unwrap();
        assert!(Parallelism::new(8, 2).validate(&m, None).is_ok());
        let e = Parallelism::new(3, 1)
            .validate(&m, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not divide the 32 query heads"), "{e}");
        let e = Parallelism::new(1, 64)
            .validate(&m, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 32 layers"), "{e}");
        let e = Parallelism::new(1, 3)
            .validate(&m, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not divide the 32 layers"), "{e}");
        let node = cat.node("a100_pairwise_nvlink").unwrap();
        let e = Parallelism::new(8, 1)
            .validate(&m, Some(&node))
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than the 4 GPUs"), "{e}");
        // GQA: TP 16 > 8 KV heads replicates KV heads, which is allowed.
        let m70 = cat.model("meta-llama/Llama-2-70b-hf").unwrap();
        assert!(Parallelism::new(16, 1).validate(&m70, None).is_ok());
    }
}
