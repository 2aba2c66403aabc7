//! The engine's check of the batches a policy forms: every kind of invalid entry is refused with
//! an internal error naming it, and the valid edge cases pass. A scripted policy (one list of
//! entries per step, from a thread-local script) forms the batches.

use std::cell::RefCell;

use super::testkit::TestCluster;
use crate::error::SimError;
use crate::kv::KvError;
use crate::request::ReqId;
use crate::scheduler::{BatchEntry, ReplicaScheduler, SchedCtx, SchedulerEntry, SchedulerParams};
use crate::workload::RequestSpec;

/// One scripted entry: request, tokens, prefill, blocks to allocate to it first.
type Scripted = (ReqId, u32, bool, u32);

thread_local! {
    static SCRIPT: RefCell<Vec<Vec<Scripted>>> = const { RefCell::new(Vec::new()) };
}

struct ScriptedPolicy {
    steps: std::vec::IntoIter<Vec<Scripted>>,
}

impl ReplicaScheduler for ScriptedPolicy {
    fn add_request(&mut self, _id: ReqId, _ctx: &mut SchedCtx<'_>) {}

    fn next_batch(
        &mut self,
        ctx: &mut SchedCtx<'_>,
        batch: &mut Vec<BatchEntry>,
    ) -> Result<(), KvError> {
        for (request, tokens, is_prefill, blocks) in self.steps.next().unwrap_or_default() {
            if blocks > 0 {
                ctx.allocate(request, blocks)?;
            }
            batch.push(BatchEntry {
                request,
                tokens,
                is_prefill,
            });
        }
        Ok(())
    }

    fn on_batch_end(&mut self, _batch: &[BatchEntry], _ctx: &mut SchedCtx<'_>) {}

    fn num_queued(&self) -> usize {
        0
    }
}

fn build(_: &SchedulerParams) -> Box<dyn ReplicaScheduler> {
    Box::new(ScriptedPolicy {
        steps: SCRIPT.with(|s| s.take()).into_iter(),
    })
}

static SCRIPTED: SchedulerEntry = SchedulerEntry {
    name: "scripted",
    summary: "test policy",
    token_blocks: false,
    max_pipeline_stages: None,
    takes_prefilled: false,
    knobs: &[],
    build,
};

/// Runs request 0 (4 prompt tokens, 2 output tokens, arriving at 0) under `steps`.
fn run(steps: Vec<Vec<Scripted>>) -> Result<(), SimError> {
    SCRIPT.with(|s| *s.borrow_mut() = steps);
    let mut c = TestCluster::new("vllm");
    c.entry = Some(&SCRIPTED);
    c.try_run(vec![RequestSpec::simple(0, 4, 2)]).map(|_| ())
}

#[test]
fn a_valid_script_serves_the_request() {
    // the whole prompt (exactly what remains), then the one decode
    run(vec![vec![(0, 4, true, 1)], vec![(0, 1, false, 0)]]).unwrap();
    // the prompt in two chunks, the last one exactly what remains
    run(vec![
        vec![(0, 3, true, 1)],
        vec![(0, 1, true, 0)],
        vec![(0, 1, false, 0)],
    ])
    .unwrap();
}

#[test]
fn every_kind_of_invalid_entry_is_refused() {
    let prefilled = vec![(0, 4, true, 1)];
    for (what, steps) in [
        ("no tokens", vec![vec![(0, 0, true, 1)]]),
        ("no KV blocks", vec![vec![(0, 4, true, 0)]]),
        (
            "twice in one batch",
            vec![vec![(0, 2, true, 1), (0, 2, true, 0)]],
        ),
        ("more prompt than remains", vec![vec![(0, 5, true, 1)]]),
        (
            "a prompt chunk after the prompt",
            vec![prefilled.clone(), vec![(0, 1, true, 0)]],
        ),
        ("a decode before the prompt", vec![vec![(0, 1, false, 1)]]),
        (
            "a decode of two tokens",
            vec![prefilled.clone(), vec![(0, 2, false, 0)]],
        ),
        (
            "a finished request",
            vec![
                prefilled.clone(),
                vec![(0, 1, false, 0)],
                vec![(0, 1, false, 1)],
            ],
        ),
    ] {
        match run(steps) {
            Err(SimError::Internal(m)) => {
                assert!(m.contains("formed an invalid batch entry"), "{what}: {m}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}
