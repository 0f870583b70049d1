//! The report's SVG plots: throughput of Vigil and its peers, and the latency curves.

use super::*;

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// Offered vs processed, Vigil and its peers, with the ideal diagonal.
pub fn throughput_svg(r: &SuiteResults, path: &Path) -> anyhow::Result<()> {
    let pts = |f: &dyn Fn(&SweepPoint) -> f64| -> Vec<(f64, f64)> {
        r.sweep
            .iter()
            .map(|p| (p.offered / 1e3, f(p) / 1e3))
            .collect()
    };
    let vigil = pts(&|p| p.vigil.rate);
    let mosq = pts(&|p| p.mosquitto.rate);
    let nats: Vec<(f64, f64)> = r
        .sweep
        .iter()
        .filter_map(|p| p.nats.as_ref().map(|n| (p.offered / 1e3, n.rate / 1e3)))
        .collect();
    let xmax = vigil.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let ymax = vigil
        .iter()
        .chain(&mosq)
        .chain(&nats)
        .map(|p| p.1)
        .fold(xmax, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "MQTT QoS 0, one reading per publish: processed vs offered",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("offered (thousand readings/s)")
        .y_desc("processed (thousand readings/s)")
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (xmax, xmax)], BLACK.mix(0.3)))
        .map_err(plot_err)?
        .label("offered")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    let series = [
        ("Vigil", &vigil, BLUE),
        ("Mosquitto relay", &mosq, RED),
        ("NATS relay", &nats, GREEN),
    ];
    for (name, points, color) in series.into_iter().filter(|(_, p, _)| !p.is_empty()) {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The latency percentile curve (x: percentile on a "nines" scale, y: milliseconds).
pub fn latency_svg(r: &SuiteResults, path: &Path) -> anyhow::Result<()> {
    let nines = |p: f64| -> f64 { -(1.0 - (p / 100.0).min(0.99999)).log10() };
    let points: Vec<(f64, f64)> = r
        .latency_curve
        .iter()
        .map(|&(p, us)| (nines(p), us as f64 / 1000.0))
        .collect();
    let ymax = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Reading → alert latency, client-observed, at half of peak load",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..5.0, 0f64..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("milliseconds")
        .x_labels(6)
        .x_label_formatter(&|x| match x.round() as i64 {
            0 => "0%".into(),
            1 => "90%".into(),
            2 => "99%".into(),
            3 => "99.9%".into(),
            4 => "99.99%".into(),
            _ => "99.999%".into(),
        })
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(plot_err)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// `vigil-bench scale`'s live phase: readings ingested per second, the window snapshots
/// that ran shaded.
pub fn scale_svg(r: &crate::scale::ScaleResult, path: &Path) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = r
        .live_rates
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 + 1.0, v / 1e6))
        .collect();
    let xmax = points.len() as f64 + 1.0;
    let ymax = points.iter().map(|p| p.1).fold(0.1, f64::max) * 1.15;
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} patients, live gRPC ingest per second (window snapshots shaded)",
                r.patients
            ),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds into the live phase")
        .y_desc("million readings/s")
        .draw()
        .map_err(plot_err)?;
    // Second i of the live phase spans (i, i + 1] on the x axis.
    let shaded = r
        .live_snapshot_running
        .iter()
        .enumerate()
        .filter(|(_, running)| **running)
        .map(|(i, _)| (i as f64, i as f64 + 1.0));
    chart
        .draw_series(
            shaded.map(|(from, to)| {
                Rectangle::new([(from, 0.0), (to, ymax)], RED.mix(0.15).filled())
            }),
        )
        .map_err(plot_err)?
        .label("window snapshot")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], RED.mix(0.15).filled()));
    chart
        .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
        .map_err(plot_err)?
        .label("readings ingested")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}
