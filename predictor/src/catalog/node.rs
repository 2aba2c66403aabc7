//! Node (server) descriptions: GPUs per node and their interconnect.

use serde::{Deserialize, Serialize};

/// One node type: how many GPUs it holds and how they talk to each other and to other nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Catalog name (`a100_dgx`, `h100_pairwise_nvlink`, ...).
    pub name: String,
    /// The device catalog name of its GPUs.
    pub device: String,
    /// GPUs per node.
    pub devices_per_node: u32,
    /// Collective bandwidth per GPU and direction inside the node, bytes/s (the slowest link a
    /// node-wide collective crosses).
    pub intra_node_bandwidth_bytes_per_s: f64,
    /// Per-message latency inside the node, seconds.
    pub intra_node_latency_s: f64,
    /// Bandwidth between the two GPUs of a directly linked pair, bytes/s.
    pub pair_bandwidth_bytes_per_s: f64,
    /// Per-GPU network bandwidth between nodes, bytes/s.
    pub inter_node_bandwidth_bytes_per_s: f64,
    /// Per-message latency between nodes, seconds.
    pub inter_node_latency_s: f64,
    /// The GPUs of a node are linked by NVLink (or NVSwitch), which vLLM's custom all-reduce
    /// needs; absent: true when the intra-node bandwidth is at least 100 GB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink: Option<bool>,
    /// Directory name under `profiles/network/` holding this node's collective profiles.
    pub network_profile_dir: String,
    /// Where the numbers come from.
    pub source: String,
}

/// Link parameters for one collective or transfer: bandwidth (bytes/s) and latency (s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Bandwidth per GPU and direction, bytes/s.
    pub bandwidth_bytes_per_s: f64,
    /// Per-message latency, seconds.
    pub latency_s: f64,
}

impl NodeSpec {
    /// True when the node's GPUs talk over NVLink (see [`NodeSpec::nvlink`]).
    pub fn has_nvlink(&self) -> bool {
        self.nvlink
            .unwrap_or(self.intra_node_bandwidth_bytes_per_s >= 100e9)
    }

    /// The link a collective over `workers` GPUs runs on: the pair link for two GPUs, the node's
    /// fabric within a node, the inter-node network beyond it.
    pub fn collective_link(&self, workers: u32) -> Link {
        if workers > self.devices_per_node {
            Link {
                bandwidth_bytes_per_s: self.inter_node_bandwidth_bytes_per_s,
                latency_s: self.inter_node_latency_s,
            }
        } else if workers <= 2 {
            Link {
                bandwidth_bytes_per_s: self.pair_bandwidth_bytes_per_s,
                latency_s: self.intra_node_latency_s,
            }
        } else {
            Link {
                bandwidth_bytes_per_s: self.intra_node_bandwidth_bytes_per_s,
                latency_s: self.intra_node_latency_s,
            }
        }
    }

    /// The link between two adjacent pipeline stages: the inter-node network when the replica's
    /// `world_size` GPUs span several nodes, else the pair link.
    pub fn pipeline_link(&self, world_size: u32) -> Link {
        if world_size > self.devices_per_node {
            self.collective_link(self.devices_per_node + 1)
        } else {
            self.collective_link(2)
        }
    }
}
