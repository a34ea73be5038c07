//! Benchmarks of the runtime and the data plane (filled by the benchmarks issue).

fn main() {
    println!("fastdata-bench: not implemented yet");
}
