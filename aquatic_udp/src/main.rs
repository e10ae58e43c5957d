#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    aquatic_cli_helpers::run_app::<aquatic_udp::config::Config, _>(
        "aquatic_udp",
        env!("CARGO_PKG_VERSION"),
        "high-performance UDP BitTorrent tracker (BEP 15, BEP 41)",
        &[],
        |config, _options| aquatic_udp::run(config),
    )
}
