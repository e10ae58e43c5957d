//! For the daemons' metrics collectors' unit tests: fresh counter blocks,
//! and a collector's text checked line by line.

use std::sync::Arc;

use aquatic_common::metrics::{Collector, Registry, render};

/// `n` fresh counter blocks.
pub fn fresh<T: Default>(n: usize) -> Vec<Arc<T>> {
    (0..n).map(|_| Arc::default()).collect()
}

/// What `collector` renders under `prefix`, after checking that it has
/// each of `lines`.
pub fn render_with_lines(
    prefix: &str,
    collector: impl Collector + 'static,
    lines: &[&str],
) -> String {
    let mut registry = Registry::with_prefix(prefix);
    registry.register_collector(Box::new(collector));
    let text = render(&registry).unwrap();
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "no {line} in\n{text}");
    }
    text
}
