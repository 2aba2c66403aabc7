//! `simulator`: simulates an LLM serving cluster (work in progress).

fn main() {
    eprintln!("simulator: not built yet");
    std::process::exit(2);
}
