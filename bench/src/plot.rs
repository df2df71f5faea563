//! The round-trip percentiles per system as an SVG bar chart.

use plotters::prelude::*;

use crate::echo::Latency;

/// Writes a grouped bar chart (p50, p90, p99 in µs) of `rows` to `path`.
pub(crate) fn latency_svg(
    path: &std::path::Path,
    rows: &[(String, Latency)],
) -> Result<(), Box<dyn std::error::Error>> {
    let height = 80 + 38 * rows.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows.iter().map(|(_, l)| l.p99.as_secs_f64() * 1e6).fold(0.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("Round trip of a 32-byte echo, loopback (µs, lower is better)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max, 0..rows.len() * 4)?;
    let names: Vec<String> = rows.iter().map(|(n, _)| n.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len() * 4)
        .y_label_formatter(&|y| if y % 4 == 1 { names.get(y / 4).cloned().unwrap_or_default() } else { String::new() })
        .x_desc("µs")
        .draw()?;
    let series = [("p50", RGBColor(31, 119, 180)), ("p90", RGBColor(255, 127, 14)), ("p99", RGBColor(214, 39, 40))];
    for (k, (label, color)) in series.into_iter().enumerate() {
        let bars = rows.iter().enumerate().map(|(i, (_, l))| {
            let v = [l.p50, l.p90, l.p99][k].as_secs_f64() * 1e6;
            let y = i * 4 + k;
            Rectangle::new([(0.0, y), (v, y + 1)], color.filled())
        });
        chart
            .draw_series(bars)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
