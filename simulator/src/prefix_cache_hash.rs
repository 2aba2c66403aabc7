//! Content identity of a request's KV blocks for the [`PrefixCache`](super::PrefixCache): which
//! leading blocks hold only shared content, and their chained 64-bit hashes.
//!
//! Token identities come from the request's content ([`Request::segments`], the unique prompt
//! tail, [`Request::output_segment`]), never from token arrays: a run of tokens is hashed as
//! (kind, id, first offset, length), and each block's hash chains its parent's. Only blocks made of
//! shared runs from the sequence's start are ever hashed; the unique runs complete the sequence.

use crate::request::Request;

/// Token-run kinds in the hash: shared content (a workload segment) or content unique to a request.
const KIND_SEGMENT: u64 = 1;
const KIND_UNIQUE: u64 = 2;
/// Parent hash of a request's first block.
const ROOT_HASH: u64 = 0x5345_5256_4553_494d;

/// How many leading blocks of `req`'s token sequence hold only shared content: those before its
/// first unique token (its prompt tail, or its output when that has no segment id); every block of
/// the sequence when there is none.
pub(super) fn shared_block_count(req: &Request, block_size: u32) -> usize {
    let seg_total: u64 = req.segments.iter().map(|s| u64::from(s.tokens)).sum();
    if req.output_segment.is_some() && u64::from(req.prefill_tokens) <= seg_total {
        usize::MAX
    } else {
        usize::try_from(seg_total / u64::from(block_size)).unwrap_or(usize::MAX)
    }
}

/// Mixes one word into a running hash (multiply–rotate; not cryptographic, 64-bit collisions are
/// treated as identity, as vLLM does with its block hashes).
fn mix(h: u64, x: u64) -> u64 {
    (h ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .rotate_left(27)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// Final avalanche of a block hash; never 0.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.max(1)
}

/// A run of tokens with consecutive identities: (kind, id, offset of the first token, length).
#[derive(Clone, Copy)]
struct Run {
    kind: u64,
    id: u64,
    offset: u64,
    len: u64,
}

/// The runs of `req`'s token sequence (prompt, then output, unbounded), in order.
fn runs(req: &Request) -> impl Iterator<Item = Run> + '_ {
    let seg_total: u64 = req.segments.iter().map(|s| u64::from(s.tokens)).sum();
    let prompt = u64::from(req.prefill_tokens).max(seg_total);
    let segs = req.segments.iter().map(|s| Run {
        kind: KIND_SEGMENT,
        id: s.id,
        offset: 0,
        len: u64::from(s.tokens),
    });
    // The unique tail and unique output share one identity space: (request, absolute position).
    let tail = Run {
        kind: KIND_UNIQUE,
        id: u64::from(req.id),
        offset: seg_total,
        len: prompt - seg_total,
    };
    let output = match req.output_segment {
        Some(id) => Run {
            kind: KIND_SEGMENT,
            id,
            offset: 0,
            len: u64::MAX,
        },
        None => Run {
            kind: KIND_UNIQUE,
            id: u64::from(req.id),
            offset: prompt,
            len: u64::MAX,
        },
    };
    segs.chain([tail, output]).filter(|r| r.len > 0)
}

/// Appends to `out` the chained hashes of `req`'s full blocks `out.len()..upto`.
pub(super) fn extend_hashes(req: &Request, block_size: u32, upto: usize, out: &mut Vec<u64>) {
    if out.len() >= upto {
        return;
    }
    let bs = u64::from(block_size);
    let start = out.len() as u64 * bs;
    let mut parent = out.last().copied().unwrap_or(ROOT_HASH);
    let mut it = runs(req);
    let mut run = it.next().expect("the output run is unbounded");
    // Skip to the run holding position `start`.
    let mut pos = 0u64;
    while run.len <= start - pos {
        pos += run.len;
        run = it.next().expect("the output run is unbounded");
    }
    let mut used = start - pos; // tokens of `run` before the cursor
    while out.len() < upto {
        let mut h = mix(parent, 0xB10C);
        let mut left = bs;
        while left > 0 {
            if used == run.len {
                run = it.next().expect("the output run is unbounded");
                used = 0;
            }
            let take = left.min(run.len - used);
            h = mix(mix(mix(mix(h, run.kind), run.id), run.offset + used), take);
            used += take;
            left -= take;
        }
        parent = finish(h);
        out.push(parent);
    }
}

/// Fills `out` (cleared first) with the chained hashes of `req`'s leading prompt blocks that hold
/// only shared content (workload segments): the only blocks another request can have cached
/// before `req` is admitted, since a block holding any token of `req`'s own prompt tail is unique
/// to it. They are the first hashes of the chain [`PrefixCache::lookup`](super::PrefixCache::lookup) walks. Returns the number
/// of prompt blocks a lookup considers, `⌊(prompt − 1) / block_size⌋`, which bounds `out.len()`.
/// `block_size` is at least 1 (a [`KvCache`](crate::kv::KvCache)'s always is).
pub fn shared_prompt_block_hashes(req: &Request, block_size: u32, out: &mut Vec<u64>) -> u32 {
    let bs = block_size;
    let prompt_blocks = req.current_prefill_tokens.saturating_sub(1) / bs;
    let seg_tokens: u64 = req.segments.iter().map(|s| u64::from(s.tokens)).sum();
    let shared_blocks = (seg_tokens / u64::from(bs)).min(u64::from(prompt_blocks)) as usize;
    out.clear();
    extend_hashes(req, bs, shared_blocks, out);
    prompt_blocks
}
