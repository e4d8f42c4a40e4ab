//! An SVG chart of a run: throughput and latency over time.

use std::path::Path;

use plotters::prelude::*;

use crate::metrics::TimelinePoint;

pub fn write_svg(path: &Path, title: &str, points: &[TimelinePoint]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(320);
    let t_max = points.iter().map(|p| p.t).fold(1.0, f64::max);
    let mbps_max = points.iter().map(|p| p.mbps).fold(0.1, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&top)
        .caption(format!("{title}: received throughput"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..mbps_max)?;
    c.configure_mesh().x_desc("seconds").y_desc("Mbps").draw()?;
    c.draw_series(LineSeries::new(points.iter().map(|p| (p.t, p.mbps)), &BLUE))?
        .label("Mbps")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    c.configure_series_labels().border_style(BLACK).draw()?;

    let lat_max = points.iter().map(|p| p.p99_ms).fold(0.1, f64::max) * 1.1;
    let mut c = ChartBuilder::on(&bottom)
        .caption("one-way latency", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..t_max, 0.0..lat_max)?;
    c.configure_mesh().x_desc("seconds").y_desc("ms").draw()?;
    c.draw_series(LineSeries::new(
        points.iter().map(|p| (p.t, p.p50_ms)),
        &GREEN,
    ))?
    .label("p50")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GREEN));
    c.draw_series(LineSeries::new(
        points.iter().map(|p| (p.t, p.p99_ms)),
        &RED,
    ))?
    .label("p99")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    c.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
