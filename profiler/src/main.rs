//! `profiler` command line.
fn main() {
    for arch in ["sm_80", "sm_86", "sm_90"] {
        match profiler::kernels::compile(arch) {
            Ok(c) => println!("{arch}: ok {:?}", c.register_report()),
            Err(e) => println!("{arch}: {e}"),
        }
    }
}
