//! Reads the server's own Prometheus metrics: the load generator counts delivered
//! readings by `vigil_readings_ingested_total`, not by what it believes it sent.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    text: String,
}

impl Scrape {
    pub async fn take(addr: SocketAddr) -> anyhow::Result<Scrape> {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to the metrics endpoint {addr}"))?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        let Some((head, text)) = body.split_once("\r\n\r\n") else {
            bail!("malformed HTTP answer from {addr}");
        };
        if !head.contains(" 200") {
            bail!(
                "{addr}/metrics answered {}",
                head.lines().next().unwrap_or("")
            );
        }
        Ok(Scrape::parse(text))
    }

    pub fn parse(text: &str) -> Scrape {
        Scrape { text: text.into() }
    }

    /// `(labels, value)` of every sample of `name`.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.text.lines().filter_map(move |line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
                let (labels, v) = r.split_once('}')?;
                (labels, v)
            } else if rest.starts_with(' ') {
                ("", rest)
            } else {
                return None;
            };
            Some((labels, value.trim().parse().ok()?))
        })
    }

    /// The sum of every series of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples(name).map(|(_, v)| v).sum()
    }

    /// Cumulative bucket counts of histogram `name` summed over its other labels, by
    /// upper bound, ascending.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = Vec::new();
        for (labels, v) in self.samples(&bucket) {
            let Some(le) = labels.split(',').find_map(|l| l.strip_prefix("le=\"")) else {
                continue;
            };
            let le = le.trim_end_matches('"');
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(x) => x,
                    Err(_) => continue,
                }
            };
            match out.iter_mut().find(|(b, _)| *b == le) {
                Some((_, c)) => *c += v,
                None => out.push((le, v)),
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// The upper bound of the bucket holding quantile `q` of the observations made between
/// two scrapes (Prometheus' `histogram_quantile` without interpolation: an upper bound,
/// never an underestimate). `None` without observations.
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let diff = between(before, after);
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    diff.iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

/// The share (0–1) of the observations made between two scrapes that fell within the
/// bucket bounded by `le` (which must be one of the histogram's bounds). `None` without
/// observations or without that bound.
pub fn share_within(before: &[(f64, f64)], after: &[(f64, f64)], le: f64) -> Option<f64> {
    let diff = between(before, after);
    let total = diff.last()?.1;
    let within = diff.iter().find(|(l, _)| *l == le)?.1;
    (total > 0.0).then(|| within / total)
}

/// Cumulative bucket counts of the observations made between two scrapes.
fn between(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c);
            (le, c - b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        vigil_readings_ingested_total{source=\"mqtt\"} 10\n\
        vigil_readings_ingested_total{source=\"grpc\"} 5\n\
        vigil_readings_ingested_totally 99\n\
        lat_bucket{severity=\"high\",le=\"0.001\"} 3\n\
        lat_bucket{severity=\"low\",le=\"0.001\"} 1\n\
        lat_bucket{severity=\"high\",le=\"0.01\"} 9\n\
        lat_bucket{severity=\"low\",le=\"0.01\"} 1\n\
        lat_bucket{severity=\"high\",le=\"+Inf\"} 10\n\
        lat_bucket{severity=\"low\",le=\"+Inf\"} 1\n";

    #[test]
    fn sums_series_and_buckets() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.sum("vigil_readings_ingested_total"), 15.0);
        let b = s.buckets("lat");
        assert_eq!(b, vec![(0.001, 4.0), (0.01, 10.0), (f64::INFINITY, 11.0)]);
        assert_eq!(quantile_between(&[], &b, 0.5), Some(0.01));
        assert_eq!(quantile_between(&[], &b, 0.3), Some(0.001));
        assert_eq!(quantile_between(&b, &b, 0.99), None);
        let earlier = vec![(0.001, 1.0), (0.01, 2.0), (f64::INFINITY, 3.0)];
        assert_eq!(share_within(&earlier, &b, 0.001), Some(3.0 / 8.0));
        assert_eq!(share_within(&[], &b, 0.01), Some(10.0 / 11.0));
        assert_eq!(share_within(&[], &b, 0.005), None, "not a bound");
        assert_eq!(share_within(&b, &b, 0.001), None, "no observations");
    }
}
