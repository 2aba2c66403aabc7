//! The event queue: a min-heap ordered by (time, creation sequence), so simultaneous events run in
//! the order they were created. Times are integer nanoseconds.
//!
//! Events due at the current time (a replica asked to schedule now, once per step) skip the heap:
//! they wait in a FIFO, which is already in (time, sequence) order, and each pop takes the earlier
//! of the two fronts. The order is exactly that of one heap.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// What happens at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A replica may form new batches.
    ReplicaSchedule {
        /// The replica.
        replica: u32,
    },
    /// A pipeline stage finished its batch.
    StageEnd {
        /// The replica.
        replica: u32,
        /// The stage.
        stage: u32,
        /// Slot of the batch in the engine's batch table.
        slot: u32,
    },
    /// A request's KV cache reached its decode replica (disaggregated serving).
    TransferEnd {
        /// The request.
        request: crate::request::ReqId,
    },
}

/// One scheduled event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When, ns.
    pub time_ns: u64,
    /// Creation sequence number (unique).
    pub seq: u64,
    /// What.
    pub kind: EventKind,
}

impl Ord for Event {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest first.
        (other.time_ns, other.seq).cmp(&(self.time_ns, self.seq))
    }
}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The queue.
#[derive(Debug, Default)]
pub struct EventQueue {
    heap: BinaryHeap<Event>,
    /// Events pushed with [`EventQueue::push_now`], in (time, sequence) order.
    now: VecDeque<Event>,
    next_seq: u64,
}

impl EventQueue {
    /// Schedules `kind` at `time_ns`.
    pub fn push(&mut self, time_ns: u64, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Event { time_ns, seq, kind });
    }

    /// Schedules `kind` at `time_ns`, the current time: no earlier than any event pushed this way
    /// before (the engine's clock never goes back). The same order as [`EventQueue::push`], at
    /// less cost.
    pub fn push_now(&mut self, time_ns: u64, kind: EventKind) {
        debug_assert!(self.now.back().is_none_or(|e| e.time_ns <= time_ns));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.now.push_back(Event { time_ns, seq, kind });
    }

    /// True when the FIFO's front comes before the heap's.
    fn now_first(&self) -> bool {
        match (self.now.front(), self.heap.peek()) {
            (Some(a), Some(b)) => (a.time_ns, a.seq) < (b.time_ns, b.seq),
            (a, _) => a.is_some(),
        }
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<u64> {
        if self.now_first() {
            self.now.front().map(|e| e.time_ns)
        } else {
            self.heap.peek().map(|e| e.time_ns)
        }
    }

    /// Removes the earliest event.
    pub fn pop(&mut self) -> Option<Event> {
        if self.now_first() {
            self.now.pop_front()
        } else {
            self.heap.pop()
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len() + self.now.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty() && self.now.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_creation_order() {
        let mut q = EventQueue::default();
        q.push(5, EventKind::ReplicaSchedule { replica: 0 });
        q.push(3, EventKind::ReplicaSchedule { replica: 1 });
        q.push(5, EventKind::ReplicaSchedule { replica: 2 });
        q.push(3, EventKind::ReplicaSchedule { replica: 3 });
        let order: Vec<u32> = std::iter::from_fn(|| q.pop())
            .map(|e| match e.kind {
                EventKind::ReplicaSchedule { replica } => replica,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, vec![1, 3, 0, 2]);
    }

    proptest::proptest! {
        /// Events pushed for the current time come out exactly where one heap would put them.
        #[test]
        fn events_due_now_keep_the_order_of_one_heap(
            ops in proptest::collection::vec((0u8..3, 0u64..4), 1..200),
        ) {
            let mut q = EventQueue::default();
            let mut heap = EventQueue::default();
            let mut now = 0u64;
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for (i, &(op, dt)) in ops.iter().enumerate() {
                let kind = EventKind::ReplicaSchedule { replica: i as u32 };
                match op {
                    0 => {
                        q.push(now + dt, kind);
                        heap.push(now + dt, kind);
                    }
                    1 => {
                        q.push_now(now, kind);
                        heap.push(now, kind);
                    }
                    _ => {
                        proptest::prop_assert_eq!(q.peek_time(), heap.peek_time());
                        proptest::prop_assert_eq!(q.len(), heap.len());
                        let (a, b) = (q.pop(), heap.pop());
                        if let Some(e) = b {
                            now = e.time_ns;
                        }
                        got.push(a);
                        want.push(b);
                    }
                }
            }
            while let Some(e) = heap.pop() {
                got.push(q.pop());
                want.push(Some(e));
            }
            proptest::prop_assert!(q.is_empty());
            proptest::prop_assert_eq!(got, want);
        }
    }
}
