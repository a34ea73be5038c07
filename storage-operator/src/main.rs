//! Storage operator daemon: broker gate, durable segment store, receipts (filled by the operator issue).

fn main() {
    println!("fastdata-operator: not implemented yet");
}
