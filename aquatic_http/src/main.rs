aquatic_cli_helpers::daemon_main!(
    aquatic_http,
    "high-performance HTTP(S) BitTorrent tracker (BEP 3, 7, 23, 24, 48)"
);
