aquatic_cli_helpers::daemon_main!(
    aquatic_ws,
    "high-performance WebTorrent tracker (WebRTC signalling over WebSocket)"
);
