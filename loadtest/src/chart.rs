//! An SVG chart of a run: throughput, latency, and (for soaks) the server's memory and
//! the loss at subscribers over time.

use std::path::Path;

use plotters::prelude::*;

use crate::metrics::TimelinePoint;

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
/// (label, colour, points) of one line.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn panel(
    area: &Area,
    caption: &str,
    y_desc: &str,
    t_max: f64,
    series: &[Series],
) -> anyhow::Result<()> {
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(0.1, f64::max)
        * 1.1;
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    c.configure_mesh().x_desc("seconds").y_desc(y_desc).draw()?;
    for (label, color, points) in series {
        let color = *color;
        c.draw_series(LineSeries::new(points.iter().copied(), color))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    c.configure_series_labels().border_style(BLACK).draw()?;
    Ok(())
}

pub fn write_svg(path: &Path, title: &str, points: &[TimelinePoint]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 960)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((3, 1));
    let t_max = points.iter().map(|p| p.t).fold(1.0, f64::max);
    let of = |f: &dyn Fn(&TimelinePoint) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| f(p).map(|v| (p.t, v)))
            .collect()
    };
    panel(
        &areas[0],
        &format!("{title}: received throughput"),
        "Mbps",
        t_max,
        &[("Mbps", BLUE, of(&|p| Some(p.mbps)))],
    )?;
    panel(
        &areas[1],
        "one-way latency",
        "ms",
        t_max,
        &[
            ("p50", GREEN, of(&|p| Some(p.p50_ms))),
            ("p99", RED, of(&|p| Some(p.p99_ms))),
        ],
    )?;
    panel(
        &areas[2],
        "server memory and loss at subscribers",
        "MB / packets per s",
        t_max,
        &[
            ("server RSS (MB)", MAGENTA, of(&|p| p.server_rss_mb)),
            (
                "packets missing per second",
                BLACK,
                of(&|p| Some(p.missing as f64)),
            ),
        ],
    )?;
    root.present()?;
    Ok(())
}
