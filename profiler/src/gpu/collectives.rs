//! NCCL collectives through `cudarc::nccl` (cargo feature `nccl`): one process, one thread per GPU,
//! `ncclCommInitRank` with one shared id. Each point is timed on every rank with the graph harness
//! after a barrier; a sample is the maximum over ranks (Vidur kept rank 0's).

use std::ffi::c_void;
use std::sync::{Arc, Barrier};

use cudarc::nccl::{result as nccl, sys};

use super::device::{Gpu, GpuError, GpuResult};
use super::timer::time_block;
use crate::plan::{CollectivePoint, Reps};
use crate::stats::TimeStats;

fn nc<T>(call: &'static str, r: Result<T, nccl::NcclError>) -> GpuResult<T> {
    r.map_err(|e| GpuError::Nccl {
        call,
        detail: format!("{e:?}"),
    })
}

/// NCCL's version (e.g. 23007 = 2.30.7), or `None` when the library cannot be loaded.
pub fn version() -> Option<i32> {
    // SAFETY: probe, then a call with no pointers.
    unsafe { sys::is_culib_present() }
        .then(|| nccl::get_nccl_version().ok())
        .flatten()
}

struct Comm(sys::ncclComm_t);

impl Drop for Comm {
    fn drop(&mut self) {
        // SAFETY: initialised by comm_init_rank, destroyed once.
        unsafe {
            let _ = nccl::comm_destroy(self.0);
        }
    }
}

fn init(world: i32, rank: i32, id: sys::ncclUniqueId) -> GpuResult<Comm> {
    let mut comm = std::ptr::null_mut();
    // SAFETY: the calling thread's current context is this rank's GPU.
    nc("ncclCommInitRank", unsafe {
        nccl::comm_init_rank(&mut comm, world, id, rank)
    })?;
    Ok(Comm(comm))
}

fn run_one(
    gpu: &Gpu,
    comm: &Comm,
    rank: i32,
    p: &CollectivePoint,
    send: u64,
    recv: u64,
) -> GpuResult<()> {
    let count = (p.size_bytes / 2) as usize;
    let s = gpu.stream as sys::cudaStream_t;
    let bf16 = sys::ncclDataType_t::ncclBfloat16;
    // SAFETY: both buffers hold `size_bytes`; the communicator belongs to this thread's GPU.
    unsafe {
        if p.send_recv {
            if rank == 0 {
                nc(
                    "ncclSend",
                    nccl::send(send as *const c_void, count, bf16, 1, comm.0, s),
                )?;
            } else {
                nc(
                    "ncclRecv",
                    nccl::recv(recv as *mut c_void, count, bf16, 0, comm.0, s),
                )?;
            }
        } else {
            nc(
                "ncclAllReduce",
                nccl::all_reduce(
                    send as *const c_void,
                    recv as *mut c_void,
                    count,
                    bf16,
                    sys::ncclRedOp_t::ncclSum,
                    comm.0,
                    s,
                ),
            )?;
        }
    }
    Ok(())
}

/// Times `points` (all with the same worker count `n`) on GPUs `0..n`; returns one statistic per
/// point. `estimate_s` gives each point's expected time (for the repetitions).
pub fn measure(
    n: u32,
    points: &[CollectivePoint],
    estimate_s: &(dyn Fn(&CollectivePoint) -> f64 + Sync),
    graphs: bool,
    on_done: &(dyn Fn() + Sync),
) -> GpuResult<Vec<TimeStats>> {
    let id = nc("ncclGetUniqueId", nccl::get_uniqueid())?;
    let barrier = Arc::new(Barrier::new(n as usize));
    let results: Vec<GpuResult<Vec<Vec<f64>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|rank| {
                let barrier = barrier.clone();
                scope.spawn(move || -> GpuResult<Vec<Vec<f64>>> {
                    let gpu = Gpu::open(rank as usize)?;
                    let comm = init(n as i32, rank as i32, id)?;
                    let max = points.iter().map(|p| p.size_bytes).max().unwrap_or(2) as usize;
                    let send = gpu.alloc(max)?;
                    let recv = gpu.alloc(max)?;
                    gpu.fill_u16(&send, 0x3f80)?; // bf16 1.0
                    let mut out = Vec::with_capacity(points.len());
                    for p in points {
                        if p.send_recv && rank > 1 {
                            out.push(Vec::new());
                            continue;
                        }
                        barrier.wait();
                        let reps = Reps::for_estimate(estimate_s(p));
                        let mut launch = |_r: usize| {
                            run_one(&gpu, &comm, rank as i32, p, send.ptr(), recv.ptr())
                        };
                        let (samples, _) = time_block(&gpu, reps, &mut launch, graphs)?;
                        if rank == 0 {
                            on_done();
                        }
                        out.push(samples);
                    }
                    gpu.sync()?;
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(GpuError::Unsupported(
                        "a collective worker thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let per_rank: Vec<Vec<Vec<f64>>> = results.into_iter().collect::<GpuResult<_>>()?;
    let mut stats = Vec::with_capacity(points.len());
    for (i, _) in points.iter().enumerate() {
        let ranks: Vec<&Vec<f64>> = per_rank
            .iter()
            .map(|r| &r[i])
            .filter(|s| !s.is_empty())
            .collect();
        let len = ranks.iter().map(|s| s.len()).min().unwrap_or(0);
        let merged: Vec<f64> = (0..len)
            .map(|j| ranks.iter().map(|s| s[j]).fold(f64::MIN, f64::max))
            .collect();
        stats.push(TimeStats::from_samples(&merged).ok_or_else(|| {
            GpuError::Unsupported("a collective produced no finite samples".into())
        })?);
    }
    Ok(stats)
}

/// The one-GPU plumbing check: a 1-rank all-reduce must return its input. Returns the max
/// absolute difference.
pub fn one_rank_all_reduce(gpu: &Gpu) -> GpuResult<f32> {
    let id = nc("ncclGetUniqueId", nccl::get_uniqueid())?;
    gpu.bind()?;
    let comm = init(1, 0, id)?;
    let data: Vec<half::bf16> = (0..4096)
        .map(|i| half::bf16::from_f32((i % 97) as f32 * 0.25 - 12.0))
        .collect();
    let send = gpu.upload(&data)?;
    let recv = gpu.alloc(send.bytes())?;
    gpu.fill_u16(&recv, 0x7fc0)?;
    let p = CollectivePoint {
        send_recv: false,
        num_workers: 1,
        size_bytes: send.bytes() as u64,
    };
    run_one(gpu, &comm, 0, &p, send.ptr(), recv.ptr())?;
    let got: Vec<half::bf16> = gpu.download(&recv, data.len())?;
    Ok(got
        .iter()
        .zip(&data)
        .map(|(a, b)| (a.to_f32() - b.to_f32()).abs())
        .fold(
            0.0f32,
            |m, x| if x.is_nan() { f32::INFINITY } else { m.max(x) },
        ))
}
