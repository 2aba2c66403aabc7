//! The event queue: a min-heap ordered by (time, creation sequence), so simultaneous events run in
//! the order they were created. Times are integer nanoseconds.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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
    next_seq: u64,
}

impl EventQueue {
    /// Schedules `kind` at `time_ns`.
    pub fn push(&mut self, time_ns: u64, kind: EventKind) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Event { time_ns, seq, kind });
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.time_ns)
    }

    /// Removes the earliest event.
    pub fn pop(&mut self) -> Option<Event> {
        self.heap.pop()
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
