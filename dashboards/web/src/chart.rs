//! The stacked bar chart of decisions over time, as SVG (presentation by CSS classes: the
//! page's CSP allows no inline style).

use crate::overview::Bucket;
use gatelog_model::UnixMillis;
use std::fmt::Write;

const W: f64 = 800.0;
const H: f64 = 260.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// The chart of `series`, stacked allow/deny/challenge/log/error, with axes and labels.
pub fn stacked_bars(series: &[Bucket]) -> String {
    let max = series.iter().map(Bucket::total).max().unwrap_or(0).max(1);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - TOP;
    let step = plot_w / series.len().max(1) as f64;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"decisions over time by outcome\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for i in 0..=4 {
        let v = max as f64 * f64::from(i) / 4.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 4.0;
        let _ = write!(s, "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" opacity=\"0.35\"/>", W - 8.0);
        let _ = write!(s, "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", LEFT - 4.0, y + 4.0, v.round());
    }
    for (i, b) in series.iter().enumerate() {
        let x = LEFT + step * i as f64;
        let mut y = TOP + plot_h;
        for (class, n) in [("allow", b.allow), ("deny", b.deny), ("challenge", b.challenge), ("log", b.log), ("error", b.error)] {
            if n == 0 {
                continue;
            }
            let h = plot_h * n as f64 / max as f64;
            y -= h;
            let _ = write!(
                s,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{} {class}: {n}</title></rect>",
                x + step * 0.1,
                (step * 0.8).max(1.0),
                UnixMillis(b.start).to_rfc3339()
            );
        }
    }
    let _ = write!(s, "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>", W - 8.0, TOP + plot_h, TOP + plot_h);
    let ticks = 4.min(series.len());
    for t in 0..ticks {
        let i = t * series.len() / ticks.max(1);
        let x = LEFT + step * i as f64;
        let label = UnixMillis(series[i].start).to_rfc3339();
        let _ = write!(s, "<text x=\"{x:.1}\" y=\"{}\">{}</text>", H - 6.0, &label[5..16].replace('T', " "));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_stacked_per_outcome() {
        let series = vec![Bucket { start: 0, allow: 3, deny: 1, ..Bucket::default() }, Bucket { start: 60_000, ..Bucket::default() }];
        let svg = stacked_bars(&series);
        assert_eq!(svg.matches("<rect class=\"allow\"").count(), 1);
        assert_eq!(svg.matches("<rect class=\"deny\"").count(), 1);
        assert!(svg.contains("deny: 1") && !svg.contains("style="));
    }
}
