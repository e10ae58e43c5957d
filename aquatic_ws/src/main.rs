#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    aquatic_cli_helpers::run_app::<aquatic_ws::config::Config, _>(
        "aquatic_ws",
        env!("CARGO_PKG_VERSION"),
        "high-performance WebTorrent tracker (WebRTC signalling over WebSocket)",
        &[],
        |config, _options| aquatic_ws::run(config),
    )
}
