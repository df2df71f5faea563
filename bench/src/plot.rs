//! The round trips as an SVG: per system a bar to the median of the round
//! medians, a whisker over the spread of the round medians, and a mark at
//! p99, so a reader sees how much a figure moved, not only where it sat.

use plotters::prelude::*;

use crate::latency::Measured;

/// Writes the chart of `rows` to `path`.
pub(crate) fn latency_svg(
    path: &std::path::Path,
    rows: &[Measured],
    payload: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let height = 90 + 34 * rows.len() as u32;
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let micros = |d: std::time::Duration| d.as_secs_f64() * 1e6;
    let max = rows.iter().map(|m| micros(m.p99).max(micros(m.spread.1))).fold(0.0, f64::max) * 1.08;
    let caption = format!("Round trip of a {payload}-byte echo, loopback (µs, lower is better)");
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(360)
        .build_cartesian_2d(0.0..max, 0..rows.len() * 3)?;
    let names: Vec<String> = rows.iter().map(|m| m.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len() * 3)
        .y_label_formatter(&|y| if y % 3 == 1 { names.get(y / 3).cloned().unwrap_or_default() } else { String::new() })
        .x_desc("µs")
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, m)| Rectangle::new([(0.0, i * 3), (micros(m.p50), i * 3 + 2)], blue.mix(0.7).filled())),
        )?
        .label("median of round medians")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], blue.mix(0.7).filled()));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, m)| {
            PathElement::new(
                vec![(micros(m.spread.0), i * 3 + 1), (micros(m.spread.1), i * 3 + 1)],
                BLACK.stroke_width(3),
            )
        }))?
        .label("spread of round medians (lowest–highest)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK.stroke_width(3)));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, m)| {
            PathElement::new(vec![(micros(m.p99), i * 3), (micros(m.p99), i * 3 + 2)], red.stroke_width(2))
        }))?
        .label("p99 of all calls")
        .legend(move |(x, y)| PathElement::new(vec![(x + 5, y - 6), (x + 5, y + 6)], red.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
