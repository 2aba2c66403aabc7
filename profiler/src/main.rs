//! `profiler`: times the operators of a transformer forward pass on an NVIDIA GPU (work in progress).

fn main() {
    eprintln!("profiler: not built yet");
    std::process::exit(2);
}
