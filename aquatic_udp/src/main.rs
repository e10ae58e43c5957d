aquatic_cli_helpers::daemon_main!(
    aquatic_udp,
    "high-performance UDP BitTorrent tracker (BEP 15, BEP 41)"
);
