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
