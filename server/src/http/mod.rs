//! HTTP: the Prometheus scrape endpoint and the liveness probe.

pub mod metrics;
