//! The sweep grids: token counts for the per-token operators, prefill and decode attention shapes,
//! and collective sizes. Every grid is deterministic, sorted and free of duplicates.

/// Which grid to sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GridKind {
    /// The full grid (about 116 token counts, ~100 prefill and ~150 decode shapes per TP).
    Full,
    /// A small subset for a smoke run on a GPU machine (`--quick`).
    Quick,
}

/// Token counts (`num_tokens`, the GEMM `M`) for the per-token operators, capped at `max_tokens`.
///
/// Full: `{1,2,4,8} ∪ 16..=512 step 16 ∪ 576..=2048 step 64 ∪ 2304..=16384 step 256` (116 values):
/// GEMM time is a staircase of tile quantisation, so the steps keep the stairs visible.
pub fn num_tokens(kind: GridKind, max_tokens: u64) -> Vec<u64> {
    let mut v: Vec<u64> = match kind {
        GridKind::Full => [1, 2, 4, 8]
            .into_iter()
            .chain((16..=512).step_by(16))
            .chain((576..=2048).step_by(64))
            .chain((2304..=16384).step_by(256))
            .collect(),
        GridKind::Quick => vec![1, 8, 64, 256, 1024, 4096, 16384],
    };
    v.retain(|&m| m <= max_tokens);
    if kind == GridKind::Quick && !v.contains(&max_tokens) && max_tokens < 16384 {
        v.push(max_tokens);
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// New-token counts of a prefill chunk.
pub fn prefill_chunks(kind: GridKind) -> Vec<u64> {
    match kind {
        GridKind::Full => vec![
            16, 32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
        ],
        GridKind::Quick => vec![128, 512, 2048, 8192],
    }
}

/// Already-cached prefix lengths in front of a prefill chunk (0 = a full prefill).
pub fn prefill_prefixes(kind: GridKind) -> Vec<u64> {
    match kind {
        GridKind::Full => vec![0, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
        GridKind::Quick => vec![0, 1024, 4096],
    }
}

/// Decode batch sizes (sequences, one new token each).
pub fn decode_batches(kind: GridKind) -> Vec<u64> {
    match kind {
        GridKind::Full => vec![1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512],
        GridKind::Quick => vec![1, 16, 64, 256],
    }
}

/// Decode context lengths (cached tokens per sequence); a log grid that the regressors interpolate.
pub fn decode_contexts(kind: GridKind) -> Vec<u64> {
    match kind {
        GridKind::Full => vec![16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768],
        GridKind::Quick => vec![128, 1024, 4096, 8192],
    }
}

/// Collective message sizes in bytes: powers of two and their 1.5× midpoints from 1 KiB to
/// 256 MiB (full), or five sizes (quick).
pub fn collective_sizes_bytes(kind: GridKind) -> Vec<u64> {
    match kind {
        GridKind::Full => {
            let mut v = Vec::new();
            for p in 10..=28 {
                v.push(1u64 << p);
                if p < 28 {
                    v.push(3u64 << (p - 1));
                }
            }
            v
        }
        GridKind::Quick => vec![1 << 10, 1 << 14, 1 << 18, 1 << 22, 1 << 26],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_unique(v: &[u64]) -> bool {
        v.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn full_token_grid_has_116_values_and_the_quick_grid_is_a_subset() {
        let full = num_tokens(GridKind::Full, 16384);
        assert_eq!(full.len(), 116);
        assert_eq!((full[0], *full.last().unwrap()), (1, 16384));
        let quick = num_tokens(GridKind::Quick, 16384);
        assert!(quick.iter().all(|m| full.contains(m)), "{quick:?}");
        assert!(sorted_unique(&full) && sorted_unique(&quick));
    }

    #[test]
    fn token_grid_respects_the_cap() {
        let v = num_tokens(GridKind::Full, 4096);
        assert_eq!(*v.last().unwrap(), 4096);
        assert!(v.iter().all(|&m| m <= 4096));
        assert_eq!(
            num_tokens(GridKind::Quick, 2000),
            vec![1, 8, 64, 256, 1024, 2000]
        );
    }

    #[test]
    fn quick_attention_and_collective_grids_are_subsets_of_the_full_ones() {
        for (q, f) in [
            (
                prefill_chunks(GridKind::Quick),
                prefill_chunks(GridKind::Full),
            ),
            (
                prefill_prefixes(GridKind::Quick),
                prefill_prefixes(GridKind::Full),
            ),
            (
                decode_batches(GridKind::Quick),
                decode_batches(GridKind::Full),
            ),
            (
                decode_contexts(GridKind::Quick),
                decode_contexts(GridKind::Full),
            ),
            (
                collective_sizes_bytes(GridKind::Quick),
                collective_sizes_bytes(GridKind::Full),
            ),
        ] {
            assert!(sorted_unique(&q) && sorted_unique(&f));
            assert!(q.iter().all(|x| f.contains(x)), "{q:?} ⊄ {f:?}");
        }
        let sizes = collective_sizes_bytes(GridKind::Full);
        assert_eq!(sizes.len(), 37);
        assert_eq!((sizes[0], sizes[1], sizes[2]), (1024, 1536, 2048));
    }
}
