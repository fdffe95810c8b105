//! `bench plot`: decode tokens/s per suite per configuration, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::stats;
use crate::store::Run;

const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Grouped bars: one group per suite, one bar per configuration.
pub fn svg(run: &Run, out: &Path) -> Result<()> {
    let suites = stats::suites(&run.rows);
    let configs: Vec<&str> = run.configs().iter().map(|c| c.name.as_str()).collect();
    let values: Vec<Vec<f64>> = suites
        .iter()
        .map(|s| configs.iter().map(|c| stats::suite_stats(&run.rows, c, s).decode_tps).collect())
        .collect();
    let svg = draw(run.id(), &suites, &configs, &values).map_err(|e| BenchError::Plot(e.to_string()))?;
    crate::store::write_atomic(out, svg.as_bytes())
}

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn draw(title: &str, suites: &[String], configs: &[&str], values: &[Vec<f64>]) -> DrawResult<String> {
    let mut buf = String::new();
    {
        let width = (160 * suites.len().max(1) as u32 + 200).max(640);
        let root = SVGBackend::with_string(&mut buf, (width, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let ymax = values.iter().flatten().copied().fold(1.0_f64, f64::max) * 1.15;
        let n = suites.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("decode tokens/s — run {title}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..n, 0.0..ymax)?;
        let label = |x: &f64| suites.get(x.floor() as usize).cloned().unwrap_or_default();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(suites.len().max(1) * 2 + 1)
            .x_label_formatter(&|x| if (x.fract() - 0.5).abs() < 0.26 { label(x) } else { String::new() })
            .y_desc("tokens/s")
            .draw()?;
        let w = 0.8 / configs.len().max(1) as f64;
        for (ci, name) in configs.iter().enumerate() {
            let color = COLORS[ci % COLORS.len()];
            let bars = values.iter().enumerate().map(|(si, v)| {
                let x0 = si as f64 + 0.1 + ci as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.95, v[ci])], color.filled())
            });
            chart
                .draw_series(bars)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        root.present()?;
    }
    Ok(buf)
}
