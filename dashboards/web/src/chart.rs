//! The stacked bar chart of decisions over time, drawn as SVG on the server. Colours come
//! from the stylesheet by class (the CSP allows no inline style); each bar has a `<title>`
//! the browser shows on hover. The SVG scales to its container, so one chart serves a laptop
//! and a phone.

use gatelog_model::UnixMillis;
pub use gatelog_store::read::Bucket;
use std::fmt::Write;

const W: f64 = 800.0;
const H: f64 = 240.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// The outcomes, bottom to top, as the CSS classes name them.
pub const OUTCOMES: [&str; 5] = ["allow", "deny", "challenge", "log", "error"];

fn counts(b: &Bucket) -> [u64; 5] {
    [b.allow, b.deny, b.challenge, b.log, b.error]
}

/// The total of a bucket.
pub fn total(b: &Bucket) -> u64 {
    counts(b).iter().sum()
}

/// A round step for `max` split in about four: 1, 2 or 5 × 10^n.
fn step(max: u64) -> u64 {
    let rough = (max / 4).max(1);
    let mut p = 1u64;
    while p.saturating_mul(10) <= rough {
        p *= 10;
    }
    [1, 2, 5, 10].into_iter().map(|m| m * p).find(|s| *s >= rough).unwrap_or(rough)
}

/// A time label: `MM-DD HH:MM` for buckets under a day, `YYYY-MM-DD` for days.
fn label(t: UnixMillis, bucket_ms: i64) -> String {
    let s = t.to_rfc3339();
    if bucket_ms >= 86_400_000 { s[..10].to_owned() } else { format!("{} {}", &s[5..10], &s[11..16]) }
}

/// The chart of `series` (buckets of `bucket_ms`), stacked by outcome, with axes.
pub fn stacked_bars(series: &[Bucket], bucket_ms: i64) -> String {
    let top = series.iter().map(total).max().unwrap_or(0);
    let step = step(top);
    let max = (top.div_ceil(step) * step).max(step);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - BOTTOM - TOP;
    let slot = plot_w / series.len().max(1) as f64;
    let mut s = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"decisions over time by outcome\" \
         xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let mut tick = 0;
    while tick <= max {
        let y = TOP + plot_h - plot_h * tick as f64 / max as f64;
        let _ = write!(s, "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>", W - RIGHT);
        let _ = write!(s, "<text class=\"y\" x=\"{:.1}\" y=\"{:.1}\">{tick}</text>", LEFT - 6.0, y + 4.0);
        tick += step;
    }
    for (i, b) in series.iter().enumerate() {
        let x = LEFT + slot * i as f64;
        let mut y = TOP + plot_h;
        for (class, n) in OUTCOMES.iter().zip(counts(b)) {
            if n == 0 {
                continue;
            }
            let h = plot_h * n as f64 / max as f64;
            y -= h;
            let _ = write!(
                s,
                "<rect class=\"{class}\" x=\"{:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{h:.2}\">\
                 <title>{}: {n} {class}</title></rect>",
                x + slot * 0.1,
                (slot * 0.8).max(0.5),
                label(b.start, bucket_ms)
            );
        }
    }
    let base = TOP + plot_h;
    let _ = write!(s, "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{base}\" y2=\"{base}\"/>", W - RIGHT);
    let ticks = 4.min(series.len());
    for t in 0..ticks {
        let i = t * series.len() / ticks;
        let x = LEFT + slot * i as f64;
        let _ = write!(
            s,
            "<text class=\"x\" x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
            H - 6.0,
            label(series[i].start, bucket_ms)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start: i64, allow: u64, deny: u64) -> Bucket {
        Bucket { start: UnixMillis(start), allow, deny, ..Bucket::default() }
    }

    #[test]
    fn bars_are_stacked_per_outcome_and_scaled_to_the_tallest() {
        let svg = stacked_bars(&[bucket(0, 30, 10), bucket(3_600_000, 0, 0), bucket(7_200_000, 5, 0)], 3_600_000);
        assert_eq!(svg.matches("<rect class=\"allow\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"deny\"").count(), 1);
        assert!(svg.contains("01-01 00:00: 10 deny"), "{svg}");
        // 40 is the tallest bar: the axis goes to 40 in steps of 10.
        assert!(svg.contains(">40</text>") && svg.contains(">10</text>") && !svg.contains(">50</text>"), "{svg}");
        // The tallest bar fills the plot.
        let plot_h = H - BOTTOM - TOP;
        assert!(svg.contains(&format!("height=\"{:.2}\"", plot_h * 30.0 / 40.0)), "{svg}");
        assert!(!svg.contains("style="));
    }

    #[test]
    fn an_empty_series_draws_axes_only() {
        let svg = stacked_bars(&[bucket(0, 0, 0)], 86_400_000);
        assert!(!svg.contains("<rect") && svg.contains("1970-01-01"));
    }

    #[test]
    fn steps_are_round() {
        assert_eq!([step(0), step(7), step(40), step(130), step(999)], [1, 1, 10, 50, 500]);
    }
}
