//! The timing harness: a block of `inner` back-to-back calls is captured into one CUDA graph
//! (removing host launch gaps), replayed `warmup` times untimed, then `samples` times between
//! timing events; each sample is the block's time divided by `inner`. If capture fails (an operation
//! that cannot be captured), the block is launched directly on the stream instead.

use cudarc::driver::{result, sys};

use super::device::{drv, Gpu, GpuResult};
use crate::plan::Reps;

/// How a measurement was timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingMode {
    /// Graph replay of the block.
    Graph,
    /// Direct launches of the block between events.
    Stream,
}

struct Events(Vec<sys::CUevent>);

impl Drop for Events {
    fn drop(&mut self) {
        for &e in &self.0 {
            // SAFETY: created by `event::create`, destroyed once.
            unsafe {
                let _ = result::event::destroy(e);
            }
        }
    }
}

struct Graph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: created by capture/instantiate, destroyed once.
        unsafe {
            let _ = result::graph::exec_destroy(self.exec);
            let _ = result::graph::destroy(self.graph);
        }
    }
}

fn capture(
    gpu: &Gpu,
    inner: u32,
    launch: &mut dyn FnMut(usize) -> GpuResult<()>,
) -> GpuResult<Graph> {
    let s = gpu.stream;
    // SAFETY: valid stream; capture is ended on every path below.
    drv("cuStreamBeginCapture", unsafe {
        result::stream::begin_capture(
            s,
            sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
        )
    })?;
    let mut launched = Ok(());
    for i in 0..inner as usize {
        launched = launch(i);
        if launched.is_err() {
            break;
        }
    }
    // SAFETY: capture was begun above on this stream.
    let graph = drv("cuStreamEndCapture", unsafe {
        result::stream::end_capture(s)
    });
    launched?;
    let graph = graph?;
    // SAFETY: `graph` is a captured graph.
    let exec = match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) }
    {
        Ok(e) => e,
        Err(e) => {
            // SAFETY: destroy the graph we own.
            unsafe {
                let _ = result::graph::destroy(graph);
            }
            return drv("cuGraphInstantiate", Err(e));
        }
    };
    // SAFETY: valid exec and stream.
    drv("cuGraphUpload", unsafe { result::graph::upload(exec, s) })?;
    Ok(Graph { graph, exec })
}

/// Timed replays actually run: the planned count, lowered when the last warm-up block shows the
/// call is slower than estimated, so that the timed replays still last about
/// [`crate::plan::budget::TARGET_TIMED_S`] (never fewer than 5).
pub fn adaptive_samples(planned: u32, block_ms: f64) -> u32 {
    if block_ms.is_nan() || block_ms <= 0.0 {
        return planned;
    }
    let target_ms = crate::plan::budget::TARGET_TIMED_S * 1e3;
    let want = (target_ms / block_ms).ceil().clamp(5.0, 30.0) as u32;
    planned.min(want).max(5)
}

/// Times `launch` (called with the rotation index `0..inner`) with `reps`; returns per-call
/// samples in milliseconds and the mode used.
pub fn time_block(
    gpu: &Gpu,
    reps: Reps,
    launch: &mut dyn FnMut(usize) -> GpuResult<()>,
    allow_graph: bool,
) -> GpuResult<(Vec<f64>, TimingMode)> {
    let s = gpu.stream;
    let graph = if allow_graph {
        match capture(gpu, reps.inner, launch) {
            Ok(g) => Some(g),
            Err(_) => {
                // A failed capture can leave the stream in an error state only for captured work;
                // make sure it is idle before falling back.
                gpu.sync()?;
                None
            }
        }
    } else {
        None
    };
    let mode = if graph.is_some() {
        TimingMode::Graph
    } else {
        TimingMode::Stream
    };
    let mut run_block = |gpu_graph: &Option<Graph>| -> GpuResult<()> {
        match gpu_graph {
            // SAFETY: valid exec and stream.
            Some(g) => drv("cuGraphLaunch", unsafe { result::graph::launch(g.exec, s) }),
            None => {
                for i in 0..reps.inner as usize {
                    launch(i)?;
                }
                Ok(())
            }
        }
    };
    let mut probe = Events(Vec::with_capacity(2));
    for _ in 0..2 {
        probe.0.push(drv(
            "cuEventCreate",
            result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT),
        )?);
    }
    for w in 0..reps.warmup.max(1) {
        let last = w + 1 == reps.warmup.max(1);
        if last {
            // SAFETY: valid event and stream.
            drv("cuEventRecord", unsafe {
                result::event::record(probe.0[0], s)
            })?;
        }
        run_block(&graph)?;
        if last {
            drv("cuEventRecord", unsafe {
                result::event::record(probe.0[1], s)
            })?;
        }
    }
    gpu.sync()?;
    // SAFETY: both probe events were recorded and the stream is idle.
    let block_ms = drv("cuEventElapsedTime", unsafe {
        result::event::elapsed(probe.0[0], probe.0[1])
    })? as f64;
    let n = adaptive_samples(reps.samples, block_ms) as usize;
    let mut ev = Events(Vec::with_capacity(2 * n));
    for _ in 0..2 * n {
        ev.0.push(drv(
            "cuEventCreate",
            result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT),
        )?);
    }
    for i in 0..n {
        // SAFETY: valid events and stream.
        drv("cuEventRecord", unsafe {
            result::event::record(ev.0[2 * i], s)
        })?;
        run_block(&graph)?;
        drv("cuEventRecord", unsafe {
            result::event::record(ev.0[2 * i + 1], s)
        })?;
    }
    gpu.sync()?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: both events were recorded and completed (stream synchronised).
        let ms = drv("cuEventElapsedTime", unsafe {
            result::event::elapsed(ev.0[2 * i], ev.0[2 * i + 1])
        })?;
        samples.push(ms as f64 / reps.inner as f64);
    }
    Ok((samples, mode))
}

#[cfg(test)]
mod tests {
    use super::adaptive_samples;

    #[test]
    fn slow_calls_get_fewer_samples_but_never_fewer_than_five() {
        assert_eq!(adaptive_samples(30, 0.01), 30);
        assert_eq!(adaptive_samples(30, 1.0), 5);
        assert_eq!(adaptive_samples(30, 0.5), 10);
        assert_eq!(adaptive_samples(5, 0.001), 5);
        assert_eq!(adaptive_samples(12, f64::NAN), 12);
    }
}
