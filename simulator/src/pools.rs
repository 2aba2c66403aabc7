//! Pools of replicas (`[[cluster.pool]]`) and the KV transfer between them
//! (`[cluster.kv_transfer]`): disaggregated prefill and decode (docs/design.md §11,
//! [disaggregation.md](../../docs/disaggregation.md)).
//!
//! A pool is the top-level configuration with a few keys replaced (device, node, layout, router,
//! scheduler keys); [`SimConfig::pool_config`] builds that configuration, so a pool is checked
//! and planned exactly as a colocated cluster is, and its errors name the pool.

use predictor::NodeSpec;
use serde::{Deserialize, Serialize};

use crate::config::{Resolved, SimConfig};
use crate::engine::transfer::{TransferMode, TransferModel};
use crate::error::SimError;
use crate::router::RouterKind;
use crate::scheduler::SchedulerConfig;

/// What a pool's replicas do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolRole {
    /// Prefill only: the first token comes from here, then the KV cache moves to the decode pool.
    Prefill,
    /// Decode only: requests arrive with their KV cache from the prefill pool.
    Decode,
    /// Both, as a colocated cluster.
    Mixed,
}

impl PoolRole {
    /// The name used in configurations.
    pub fn name(self) -> &'static str {
        match self {
            PoolRole::Prefill => "prefill",
            PoolRole::Decode => "decode",
            PoolRole::Mixed => "mixed",
        }
    }
}

/// One `[[cluster.pool]]` entry: unset keys are the top-level ones (`[replica]`, `[cluster]`,
/// `[scheduler]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// `prefill`, `decode` or `mixed`.
    pub role: PoolRole,
    /// Replicas in the pool.
    pub replicas: u32,
    /// GPU (catalog name); unset: `replica.device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Node type; unset: `replica.node` when the device is the top-level one, else the device's
    /// default node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Tensor-parallel degree; unset: `replica.tp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tp: Option<u32>,
    /// Pipeline stages; unset: `replica.pp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pp: Option<u32>,
    /// How a replica of the pool is chosen; unset: `cluster.router`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<RouterKind>,
    /// Keys of `[scheduler]` replaced for this pool (e.g. `name`, `num_blocks`,
    /// `vllm_v1.max_num_batched_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<toml::Table>,
}

/// Which link a KV transfer crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferLink {
    /// NVLink when every GPU of the cluster fits in one node of one type, else the network.
    #[default]
    Auto,
    /// The node's NVLink (`intra_node_bandwidth_bytes_per_s`, `intra_node_latency_s`).
    Nvlink,
    /// RDMA between nodes (`inter_node_bandwidth_bytes_per_s`, `inter_node_latency_s`).
    Network,
}

/// Section `[cluster.kv_transfer]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvTransferConfig {
    /// `after_prefill` or `layerwise`.
    pub mode: TransferMode,
    /// `auto`, `nvlink` or `network`.
    pub link: TransferLink,
    /// Bandwidth of one transfer, bytes/s; unset: the link's per-GPU bandwidth × the GPUs of the
    /// smaller replica of the pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_bytes_per_s: Option<f64>,
    /// Latency of one transfer, s; unset: the link's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_s: Option<f64>,
}

/// A pool checked against the catalog.
#[derive(Debug, Clone)]
pub struct ResolvedPool {
    /// The pool's role.
    pub role: PoolRole,
    /// Its configuration as a colocated cluster of its replicas.
    pub config: SimConfig,
    /// That configuration resolved.
    pub resolved: Resolved,
}

/// The prefill and decode pools of a disaggregated cluster, resolved.
#[derive(Debug, Clone)]
pub struct Disaggregated {
    /// The prefill pool.
    pub prefill: ResolvedPool,
    /// The decode pool.
    pub decode: ResolvedPool,
    /// The transfer between them.
    pub transfer: TransferModel,
    /// The link it crosses, for the user: `nvlink` or `network`.
    pub link: TransferLink,
}

fn invalid(field: &str, why: impl Into<String>) -> SimError {
    SimError::Config {
        field: field.to_string(),
        why: why.into(),
    }
}

impl SimConfig {
    /// The configuration of pool `i` as a colocated cluster of its replicas; errors name the
    /// pool's field.
    pub fn pool_config(&self, i: usize) -> Result<SimConfig, SimError> {
        let p = &self.cluster.pools[i];
        let at = |k: &str| format!("cluster.pool[{i}].{k}");
        let mut c = self.clone();
        c.cluster.pools.clear();
        c.cluster.num_replicas = p.replicas;
        if let Some(d) = &p.device {
            if !d.eq_ignore_ascii_case(&self.replica.device) {
                c.replica.node = None;
            }
            c.replica.device = d.clone();
        }
        if p.node.is_some() {
            c.replica.node = p.node.clone();
        }
        c.replica.tp = p.tp.unwrap_or(c.replica.tp);
        c.replica.pp = p.pp.unwrap_or(c.replica.pp);
        c.cluster.router = p.router.unwrap_or(c.cluster.router);
        if let Some(patch) = &p.scheduler {
            let mut base = toml::Table::try_from(&self.scheduler)
                .expect("the scheduler configuration serializes");
            merge(&mut base, patch);
            c.scheduler = SchedulerConfig::deserialize(toml::Value::Table(base)).map_err(|e| {
                invalid(
                    &at("scheduler"),
                    format!("{}; use the keys of [scheduler]", e.message()),
                )
            })?;
        }
        Ok(c)
    }

    /// Checks `[[cluster.pool]]` and resolves the pools: `None` without pools or with one mixed
    /// pool (a colocated cluster, see [`SimConfig::colocated`]), else the prefill and decode pools.
    pub fn disaggregated(&self) -> Result<Option<Disaggregated>, SimError> {
        let pools = &self.cluster.pools;
        if pools.is_empty() {
            return Ok(None);
        }
        let total: u32 = pools.iter().map(|p| p.replicas).sum();
        if self.cluster.num_replicas != 1 && self.cluster.num_replicas != total {
            return Err(invalid("cluster.num_replicas", format!("{} disagrees with the {total} replicas of [[cluster.pool]]; leave it unset (--num-replicas) when pools give the replicas", self.cluster.num_replicas)));
        }
        for (i, p) in pools.iter().enumerate() {
            if p.replicas == 0 {
                return Err(invalid(
                    &format!("cluster.pool[{i}].replicas"),
                    "must be at least 1; remove the pool or give it replicas",
                ));
            }
        }
        let find_role = |role: PoolRole| -> Vec<usize> {
            (0..pools.len())
                .filter(|&i| pools[i].role == role)
                .collect()
        };
        let (prefill, decode, mixed) = (
            find_role(PoolRole::Prefill),
            find_role(PoolRole::Decode),
            find_role(PoolRole::Mixed),
        );
        if !mixed.is_empty() {
            if pools.len() > 1 {
                return Err(invalid("cluster.pool", "a mixed pool is a colocated cluster and cannot be combined with other pools; use one mixed pool, or one prefill and one decode pool"));
            }
            return Ok(None);
        }
        match (prefill.as_slice(), decode.as_slice()) {
            ([p], [d]) => {
                let prefill = self.resolve_pool(*p)?;
                let decode = self.resolve_pool(*d)?;
                if !decode.resolved.scheduler.takes_prefilled {
                    let ok: Vec<&str> = crate::scheduler::SCHEDULERS.iter().filter(|e| e.takes_prefilled).map(|e| e.name).collect();
                    return Err(invalid(&format!("cluster.pool[{d}].scheduler"), format!("the {} scheduler cannot serve a decode pool (it cannot take requests prefilled elsewhere); use one of {}", decode.resolved.scheduler.name, ok.join(", "))));
                }
                let (transfer, link) = self.transfer_model(&prefill, &decode)?;
                Ok(Some(Disaggregated { prefill, decode, transfer, link }))
            }
            ([], [_]) => Err(invalid("cluster.pool", "a decode pool needs a prefill pool: add a [[cluster.pool]] with role = \"prefill\"")),
            ([_], []) => Err(invalid("cluster.pool", "a prefill pool needs a decode pool: add a [[cluster.pool]] with role = \"decode\"")),
            _ => Err(invalid("cluster.pool", format!("{} prefill and {} decode pools: give exactly one of each (several pools per role are not supported yet)", prefill.len(), decode.len()))),
        }
    }

    /// The configuration to run as a colocated cluster: itself, or its one mixed pool's.
    pub fn colocated(&self) -> Result<SimConfig, SimError> {
        match self.cluster.pools.as_slice() {
            [p] if p.role == PoolRole::Mixed => {
                if p.replicas == 0 {
                    return Err(invalid("cluster.pool[0].replicas", "must be at least 1"));
                }
                self.pool_config(0)
            }
            _ => Ok(self.clone()),
        }
    }

    fn resolve_pool(&self, i: usize) -> Result<ResolvedPool, SimError> {
        let config = self.pool_config(i)?;
        let resolved = config
            .resolve(&predictor::Catalog::builtin())
            .map_err(|e| match e {
                SimError::Config { field, why } => invalid(
                    &format!(
                        "cluster.pool[{i}] ({} pool): {field}",
                        self.cluster.pools[i].role.name()
                    ),
                    format!("{why} (set it in the pool's entry)"),
                ),
                other => other,
            })?;
        Ok(ResolvedPool {
            role: self.cluster.pools[i].role,
            config,
            resolved,
        })
    }

    fn transfer_model(
        &self,
        p: &ResolvedPool,
        d: &ResolvedPool,
    ) -> Result<(TransferModel, TransferLink), SimError> {
        let k = &self.cluster.kv_transfer;
        let (pn, dn) = (&p.resolved.node, &d.resolved.node);
        let gpus =
            |r: &ResolvedPool| r.resolved.parallelism.world_size() * r.config.cluster.num_replicas;
        let link = match k.link {
            TransferLink::Auto
                if pn.name == dn.name && gpus(p) + gpus(d) <= pn.devices_per_node =>
            {
                TransferLink::Nvlink
            }
            TransferLink::Auto => TransferLink::Network,
            l => l,
        };
        if link == TransferLink::Nvlink && pn.name != dn.name {
            return Err(invalid("cluster.kv_transfer.link", format!("nvlink needs both pools on one node type, but they use {} and {}; use link = \"network\" or the same node", pn.name, dn.name)));
        }
        let on = |n: &NodeSpec| match link {
            TransferLink::Nvlink => (n.intra_node_bandwidth_bytes_per_s, n.intra_node_latency_s),
            _ => (n.inter_node_bandwidth_bytes_per_s, n.inter_node_latency_s),
        };
        let ((pbw, plat), (dbw, dlat)) = (on(pn), on(dn));
        // every GPU of the smaller replica moves its share of the KV over its own link
        let gpus_per_pair = p
            .resolved
            .parallelism
            .world_size()
            .min(d.resolved.parallelism.world_size());
        let bandwidth = k
            .bandwidth_bytes_per_s
            .unwrap_or(pbw.min(dbw) * f64::from(gpus_per_pair));
        let latency_s = k.latency_s.unwrap_or(plat.max(dlat));
        if !(bandwidth.is_finite() && bandwidth > 0.0) {
            return Err(invalid(
                "cluster.kv_transfer.bandwidth_bytes_per_s",
                format!("{bandwidth} is not a positive number of bytes/s"),
            ));
        }
        if !(latency_s.is_finite() && latency_s >= 0.0) {
            return Err(invalid(
                "cluster.kv_transfer.latency_s",
                format!("{latency_s} is not a number of seconds ≥ 0"),
            ));
        }
        Ok((
            TransferModel {
                mode: k.mode,
                bandwidth_bytes_per_s: bandwidth,
                latency_ns: (latency_s * 1e9).round() as u64,
                kv_bytes_per_token: kv_bytes_per_token(&p.resolved),
                layers: p.resolved.model.num_hidden_layers,
            },
            link,
        ))
    }
}

/// Overwrites `base` with `patch`, table by table.
fn merge(base: &mut toml::Table, patch: &toml::Table) {
    for (k, v) in patch {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(p)) => merge(b, p),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// KV bytes of one token over every layer and KV head of the model, at the pool's KV precision
/// (the memory planner's per-layer bytes at TP 1).
fn kv_bytes_per_token(r: &Resolved) -> u64 {
    r.model
        .kv_bytes_per_token_per_layer(1, r.precision.kv_bytes)
        * u64::from(r.model.num_hidden_layers)
}
