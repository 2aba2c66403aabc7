//! Dense prediction tables: every operator's time tabulated over Vidur's grids (docs/design.md
//! §4.4; bounds configurable), so that a prediction in the simulator is an array index.
//!
//! Grids (defaults in brackets): token operators, `attn_kv_cache_save`, `all_reduce` and
//! `send_recv` over `num_tokens = 1..=max_tokens` [4096]; `attn_decode` over `batch_size =
//! 1..=max_batch_size` [128] × `kv_cache_size = 0..=max_tokens step 64`; `attn_prefill` over
//! `kv_cache_size = 0..=max_tokens step 64` × `prefill_chunk_size = 1..=max_prefill_chunk` [4096].

use serde::{Deserialize, Serialize};

use crate::batch::KV_GRANULARITY;

/// Bounds of the prediction grids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableBounds {
    /// Largest token count of the 1-D tables, and largest KV length of the attention tables
    /// (Vidur's `prediction_max_tokens_per_request`).
    pub max_tokens: u64,
    /// Largest decode batch (Vidur's `prediction_max_batch_size`).
    pub max_batch_size: u64,
    /// Largest prefill chunk (Vidur's `prediction_max_prefill_chunk_size`).
    pub max_prefill_chunk: u64,
}

impl Default for TableBounds {
    fn default() -> Self {
        TableBounds {
            max_tokens: 4096,
            max_batch_size: 128,
            max_prefill_chunk: 4096,
        }
    }
}

impl TableBounds {
    /// Checks that every bound is at least 1.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 || self.max_batch_size == 0 || self.max_prefill_chunk == 0 {
            return Err(format!(
                "prediction-table bounds must be at least 1 (max_tokens {}, max_batch_size {}, max_prefill_chunk {})",
                self.max_tokens, self.max_batch_size, self.max_prefill_chunk
            ));
        }
        Ok(())
    }

    /// The KV axis of the attention tables: `0, 64, ..., max_tokens`.
    pub fn kv_axis(&self) -> Vec<u64> {
        (0..=self.max_tokens / KV_GRANULARITY)
            .map(|i| i * KV_GRANULARITY)
            .collect()
    }
}

/// One grid axis: sorted distinct keys, with O(1) lookup when evenly spaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    keys: Vec<u64>,
    step: Option<u64>,
}

impl Axis {
    /// An axis over sorted, distinct `keys` (at least one).
    pub fn new(keys: Vec<u64>) -> Self {
        let step = if keys.len() >= 2 {
            let s = keys[1] - keys[0];
            (s > 0 && keys.windows(2).all(|w| w[1] - w[0] == s)).then_some(s)
        } else {
            None
        };
        Axis { keys, step }
    }

    /// `start..=end` by `step`.
    pub fn range(start: u64, end: u64, step: u64) -> Self {
        Self::new((start..=end).step_by(step as usize).collect())
    }

    /// The keys.
    pub fn keys(&self) -> &[u64] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True without keys (never for a built axis).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Position of `k`, if it is a key.
    #[inline]
    pub fn index(&self, k: u64) -> Option<usize> {
        let first = self.keys[0];
        match self.step {
            Some(s) => {
                if k < first || !(k - first).is_multiple_of(s) {
                    return None;
                }
                let i = ((k - first) / s) as usize;
                (i < self.keys.len()).then_some(i)
            }
            None if self.keys.len() == 1 => (k == first).then_some(0),
            None => self.keys.binary_search(&k).ok(),
        }
    }

    /// The key nearest to `k` inside the axis (for out-of-grid fallbacks): the largest key ≤ `k`,
    /// or the first key.
    pub fn clamp(&self, k: u64) -> u64 {
        let i = self.keys.partition_point(|v| *v <= k);
        self.keys[i.saturating_sub(1)]
    }
}

/// A 1-D table of times (ms) over an axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Table1 {
    /// The keys (tokens).
    pub axis: Axis,
    /// Time per key, ms.
    pub values_ms: Vec<f64>,
}

impl Table1 {
    /// The time at key `k`, if tabulated.
    #[inline]
    pub fn get(&self, k: u64) -> Option<f64> {
        self.axis.index(k).map(|i| self.values_ms[i])
    }
}

/// A 2-D table of times (ms), row-major over `axis0 × axis1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table2 {
    /// First key (decode: batch size; prefill: KV length).
    pub axis0: Axis,
    /// Second key (decode: KV length; prefill: chunk size).
    pub axis1: Axis,
    /// Times, ms.
    pub values_ms: Vec<f64>,
}

impl Table2 {
    /// The time at `(a, b)`, if tabulated.
    #[inline]
    pub fn get(&self, a: u64, b: u64) -> Option<f64> {
        let i = self.axis0.index(a)?;
        let j = self.axis1.index(b)?;
        Some(self.values_ms[i * self.axis1.len() + j])
    }

    /// The grid point nearest to `(a, b)` inside the table.
    pub fn clamp(&self, a: u64, b: u64) -> (u64, u64) {
        (self.axis0.clamp(a), self.axis1.clamp(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_index_regular_and_irregular_keys() {
        let a = Axis::range(0, 4096, 64);
        assert_eq!(a.len(), 65);
        assert_eq!(a.index(128), Some(2));
        assert_eq!(a.index(130), None);
        assert_eq!(a.index(4160), None);
        assert_eq!(a.clamp(5000), 4096);
        assert_eq!(a.clamp(130), 128);
        let b = Axis::new(vec![1, 2, 4, 8]);
        assert_eq!(b.index(4), Some(2));
        assert_eq!(b.index(3), None);
        assert_eq!(b.clamp(0), 1);
        let t = Table2 {
            axis0: Axis::range(1, 2, 1),
            axis1: Axis::range(0, 64, 64),
            values_ms: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(t.get(2, 0), Some(3.0));
        assert_eq!(t.get(3, 0), None);
        assert_eq!(t.clamp(9, 100), (2, 64));
    }
}
