//! Builds the runtime to wasm (skipped with `SKIP_WASM_BUILD=1`).
//!
//! The blob follows the native profile's optimization: `release` (tests, the demo and the
//! dev node; native opt-level 1) builds it at opt-level 1 too, a third less compile time on a
//! cold build; `production` (opt-level 3: operators, `fastdata-bench`, `scripts/weights`)
//! builds it fully optimized with fat LTO.

fn main() {
    #[cfg(feature = "std")]
    {
        let builder = substrate_wasm_builder::WasmBuilder::init_with_defaults();
        let light = matches!(std::env::var("OPT_LEVEL").as_deref(), Ok("0" | "1"));
        if light {
            builder.append_to_rust_flags("-C opt-level=1").build();
        } else {
            builder.build();
        }
    }
}
