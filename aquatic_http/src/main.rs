#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    aquatic_cli_helpers::run_app::<aquatic_http::config::Config, _>(
        "aquatic_http",
        env!("CARGO_PKG_VERSION"),
        "high-performance HTTP(S) BitTorrent tracker (BEP 3, 7, 23, 24, 48)",
        &[],
        |config, _options| aquatic_http::run(config),
    )
}
