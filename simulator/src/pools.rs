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
            .map_err(|e| {
                let pool = format!(
                    "cluster.pool[{i}] ({} pool)",
                    self.cluster.pools[i].role.name()
                );
                match e {
                    SimError::Config { field, why } => invalid(
                        &format!("{pool}: {field}"),
                        format!("{why} (set it in the pool's entry)"),
                    ),
                    other => invalid(&pool, format!("{other} (set it in the pool's entry)")),
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    const PD: &str = "[[cluster.pool]]\nrole = \"prefill\"\nreplicas = 2\n\n[[cluster.pool]]\nrole = \"decode\"\nreplicas = 3\n";

    fn cfg(text: &str) -> SimConfig {
        SimConfig::from_toml(text).unwrap()
    }

    fn field_of(text: &str) -> (String, String) {
        match cfg(text).disaggregated() {
            Err(SimError::Config { field, why }) => (field, why),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn a_prefill_and_a_decode_pool_resolve_with_the_nodes_link() {
        let d = cfg(PD).disaggregated().unwrap().unwrap();
        assert_eq!(d.prefill.config.cluster.num_replicas, 2);
        assert_eq!(d.decode.config.cluster.num_replicas, 3);
        assert!(d.prefill.config.cluster.pools.is_empty());
        // Llama-3-8B: 32 layers × 8 KV heads × 128 × (K, V) × 2 bytes
        assert_eq!(d.transfer.kv_bytes_per_token, 131_072);
        assert_eq!(d.transfer.layers, 32);
        // 5 GPUs fit one DGX H100: NVLink at 450 GB/s per GPU, 4 µs
        assert_eq!(d.link, TransferLink::Nvlink);
        assert_eq!(d.transfer.bandwidth_bytes_per_s, 450e9);
        assert_eq!(d.transfer.latency_ns, 4_000);
        assert_eq!(d.transfer.mode, TransferMode::AfterPrefill);
    }

    #[test]
    fn heterogeneous_pools_cross_the_network_and_keep_their_own_layouts() {
        let text = format!("{PD}device = \"a100\"\ntp = 2\n[cluster.pool.scheduler]\nname = \"sarathi\"\nchunk_size = 256\n[cluster.kv_transfer]\nmode = \"layerwise\"\n");
        let d = cfg(&text).disaggregated().unwrap().unwrap();
        let r = &d.decode.resolved;
        assert_eq!((r.device.name.as_str(), r.parallelism.tp), ("a100", 2));
        assert_eq!(d.decode.config.scheduler.name, "sarathi");
        assert_eq!(d.decode.config.scheduler.chunk_size, 256);
        // the rest of [scheduler] is kept
        assert_eq!(d.decode.config.scheduler.block_size, 16);
        assert_eq!(d.prefill.resolved.device.name, "h100");
        assert_eq!(d.link, TransferLink::Network);
        // min(H100, A100) network bandwidth per GPU × the 1 GPU of the smaller replica
        let a100 = predictor::Catalog::builtin().node("a100_dgx").unwrap();
        let h100 = predictor::Catalog::builtin().node("h100_dgx").unwrap();
        assert_eq!(
            d.transfer.bandwidth_bytes_per_s,
            a100.inter_node_bandwidth_bytes_per_s
                .min(h100.inter_node_bandwidth_bytes_per_s)
        );
        assert_eq!(d.transfer.mode, TransferMode::Layerwise);
    }

    #[test]
    fn the_transfer_knobs_override_the_link() {
        let text = format!("{PD}[cluster.kv_transfer]\nlink = \"network\"\nlatency_s = 0.001\n");
        let d = cfg(&text).disaggregated().unwrap().unwrap();
        assert_eq!(d.transfer.bandwidth_bytes_per_s, 50e9);
        assert_eq!(d.transfer.latency_ns, 1_000_000);
        let text = format!("{PD}[cluster.kv_transfer]\nbandwidth_bytes_per_s = 1e9\n");
        let d = cfg(&text).disaggregated().unwrap().unwrap();
        assert_eq!(d.transfer.bandwidth_bytes_per_s, 1e9);
        let (field, _) = field_of(&format!(
            "{PD}[cluster.kv_transfer]\nbandwidth_bytes_per_s = 0\n"
        ));
        assert_eq!(field, "cluster.kv_transfer.bandwidth_bytes_per_s");
        let (field, _) = field_of(&format!("{PD}[cluster.kv_transfer]\nlatency_s = -1\n"));
        assert_eq!(field, "cluster.kv_transfer.latency_s");
    }

    #[test]
    fn bad_pools_are_errors_naming_the_field_and_the_fix() {
        let (f, why) = field_of("[[cluster.pool]]\nrole = \"decode\"\nreplicas = 1\n");
        assert_eq!(f, "cluster.pool");
        assert!(why.contains("role = \"prefill\""), "{why}");
        let (f, why) = field_of("[[cluster.pool]]\nrole = \"prefill\"\nreplicas = 1\n");
        assert!(f == "cluster.pool" && why.contains("decode"), "{why}");
        let (f, _) = field_of(&PD.replace("replicas = 3", "replicas = 0"));
        assert_eq!(f, "cluster.pool[1].replicas");
        let (f, why) = field_of(&format!("{PD}[cluster.pool.scheduler]\nname = \"orca\"\n"));
        assert!(
            f == "cluster.pool[1].scheduler" && why.contains("vllm_v1"),
            "{why}"
        );
        let (f, why) = field_of(&format!("{PD}[cluster.pool.scheduler]\nbogus = 1\n"));
        assert!(
            f == "cluster.pool[1].scheduler" && why.contains("bogus"),
            "{why}"
        );
        let (f, why) = field_of(&format!(
            "{PD}device = \"a100\"\n[cluster.kv_transfer]\nlink = \"nvlink\"\n"
        ));
        assert!(
            f == "cluster.kv_transfer.link" && why.contains("network"),
            "{why}"
        );
        let (f, _) = field_of(&format!("[cluster]\nnum_replicas = 4\n{PD}"));
        assert_eq!(f, "cluster.num_replicas");
        let (f, why) = field_of(&format!(
            "{PD}[[cluster.pool]]\nrole = \"mixed\"\nreplicas = 1\n"
        ));
        assert!(f == "cluster.pool" && why.contains("mixed"), "{why}");
        let (f, _) = field_of(&format!(
            "{PD}[[cluster.pool]]\nrole = \"decode\"\nreplicas = 1\n"
        ));
        assert_eq!(f, "cluster.pool");
        // a pool whose model does not fit names the pool and the planner's fix
        let big = format!("[replica]\nmodel = \"meta-llama/Llama-2-70b-hf\"\ntp = 8\n{PD}tp = 1\n");
        let (f, why) = field_of(&big);
        assert!(f.starts_with("cluster.pool[1] (decode pool)"), "{f}: {why}");
        // an unknown role is a parse error naming the variants
        let e =
            SimConfig::from_toml("[[cluster.pool]]\nrole = \"both\"\nreplicas = 1\n").unwrap_err();
        assert!(e.to_string().contains("prefill"), "{e}");
    }

    #[test]
    fn one_mixed_pool_is_a_colocated_cluster() {
        let c = cfg("[[cluster.pool]]\nrole = \"mixed\"\nreplicas = 3\ntp = 2\n");
        assert!(c.disaggregated().unwrap().is_none());
        let col = c.colocated().unwrap();
        assert_eq!((col.cluster.num_replicas, col.replica.tp), (3, 2));
        assert!(col.cluster.pools.is_empty());
        assert_eq!(cfg("").colocated().unwrap(), cfg(""));
    }

    #[test]
    fn pools_round_trip_through_toml_and_a_plain_config_has_none() {
        let c = cfg(&format!(
            "{PD}[cluster.kv_transfer]\nmode = \"layerwise\"\n"
        ));
        assert_eq!(SimConfig::from_toml(&c.to_toml()).unwrap(), c);
        let plain = SimConfig::default().to_toml();
        assert!(
            !plain.contains("pool") && !plain.contains("kv_transfer"),
            "{plain}"
        );
    }
}
