//! Inline SVG charts for the scoreboard: a burn-down (remaining budget over the SLO period
//! with the ideal straight line) and a burn-rate chart with the alert thresholds. Pure
//! string building; every series and threshold carries a `data-` attribute naming it, so
//! tests (and people reading the source) can find them.

use super::{Series, Threshold};
use std::fmt::Write;

const W: f64 = 560.0;
const H: f64 = 180.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// Maps data to the plot area.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, t: f64) -> f64 {
        let span = (self.x1 - self.x0).max(1.0);
        LEFT + (t - self.x0) / span * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        let span = (self.y1 - self.y0).max(f64::EPSILON);
        TOP + (1.0 - (v - self.y0) / span) * (H - TOP - BOTTOM)
    }

    fn points(&self, points: impl IntoIterator<Item = (f64, f64)>) -> String {
        let mut out = String::new();
        for (t, v) in points {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "{:.1},{:.1}", self.x(t), self.y(v));
        }
        out
    }
}

fn open(kind: &str, label: &str) -> String {
    format!(
        "<svg class=\"chart\" data-chart=\"{kind}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        super::html::escape(label)
    )
}

fn time_label(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.strftime("%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Axes: the frame, the y labels given, and the first and last time.
fn axes(out: &mut String, f: &Frame, y_labels: &[(f64, String)]) {
    let _ = write!(
        out,
        "<rect class=\"plot\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{}\" height=\"{}\"/>",
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    for (v, label) in y_labels {
        let y = f.y(*v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y + 4.0
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"{LEFT}\" y=\"{}\">{}</text><text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        H - 6.0,
        time_label(f.x0 as i64),
        W - RIGHT,
        H - 6.0,
        time_label(f.x1 as i64)
    );
}

fn nodata(out: &mut String, why: &str) {
    let _ = write!(
        out,
        "<text class=\"nodata\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data: {}</text>",
        W / 2.0,
        H / 2.0,
        super::html::escape(why)
    );
}

/// Remaining budget (fraction) over the period `[start, end]`, and the ideal straight line
/// from all of it at the start to none at the end.
pub fn burndown(series: &Series, label: &str) -> String {
    let mut out = open("burndown", label);
    let lowest = series
        .points
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::min);
    let f = Frame {
        x0: series.start as f64,
        x1: series.end as f64,
        y0: lowest,
        y1: 1.0,
    };
    let mut labels = vec![
        (1.0, "100%".to_owned()),
        (0.5, "50%".to_owned()),
        (0.0, "0%".to_owned()),
    ];
    if lowest < 0.0 {
        labels.push((lowest, format!("{:.0}%", lowest * 100.0)));
    }
    axes(&mut out, &f, &labels);
    let _ = write!(
        out,
        "<polyline class=\"ideal\" data-series=\"ideal\" points=\"{}\"/>",
        f.points([(f.x0, 1.0), (f.x1, 0.0)])
    );
    match &series.missing {
        Some(why) => nodata(&mut out, why),
        None if series.points.is_empty() => nodata(&mut out, "no samples in the period"),
        None => {
            let _ = write!(
                out,
                "<polyline class=\"remaining\" data-series=\"remaining\" points=\"{}\"/>",
                f.points(series.points.iter().map(|(t, v)| (*t as f64, *v)))
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Burn rate over time with one line per alert threshold.
pub fn burn(series: &Series, thresholds: &[Threshold], label: &str) -> String {
    let mut out = open("burn", label);
    let top = series
        .points
        .iter()
        .map(|(_, v)| *v)
        .chain(thresholds.iter().map(|t| t.factor))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let f = Frame {
        x0: series.start as f64,
        x1: series.end as f64,
        y0: 0.0,
        y1: top,
    };
    axes(&mut out, &f, &[(0.0, "0x".to_owned())]);
    for t in thresholds {
        let y = f.y(t.factor);
        let _ = write!(
            out,
            "<line class=\"threshold {}\" data-threshold=\"{}\" data-factor=\"{}\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} {}x</text>",
            match t.severity {
                crate::api::Severity::Page => "page",
                crate::api::Severity::Ticket => "ticket",
            },
            super::html::escape(&t.name),
            t.factor,
            W - RIGHT,
            W - RIGHT - 2.0,
            y - 2.0,
            super::html::escape(&t.name),
            t.factor
        );
    }
    match &series.missing {
        Some(why) => nodata(&mut out, why),
        None if series.points.is_empty() => nodata(&mut out, "no samples in the range"),
        None => {
            let _ = write!(
                out,
                "<polyline class=\"burn\" data-series=\"burn\" points=\"{}\"/>",
                f.points(series.points.iter().map(|(t, v)| (*t as f64, *v)))
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Severity;

    #[test]
    fn burndown_draws_the_ideal_line_corner_to_corner_and_the_series() {
        let s = Series {
            start: 0,
            end: 100,
            points: vec![(0, 1.0), (50, 0.8), (100, 0.5)],
            missing: None,
        };
        let svg = burndown(&s, "x");
        // Plot area: x 48..548, y 10..156; y0 = 0, y1 = 1.
        assert!(
            svg.contains("data-series=\"ideal\" points=\"48.0,10.0 548.0,156.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("data-series=\"remaining\" points=\"48.0,10.0 298.0,39.2 548.0,83.0\""),
            "{svg}"
        );
        assert!(!svg.contains("nodata"));
    }

    #[test]
    fn missing_data_says_why_instead_of_a_line() {
        let svg = burndown(&Series::missing(0, 100, "Prometheus <down>"), "x");
        assert!(svg.contains("<text class=\"nodata\""));
        assert!(svg.contains("no data: Prometheus &lt;down&gt;"));
        assert!(!svg.contains("data-series=\"remaining\""));
        assert!(svg.contains("data-series=\"ideal\""));
    }

    #[test]
    fn burn_chart_draws_each_threshold_within_the_scale() {
        let s = Series {
            start: 0,
            end: 10,
            points: vec![(0, 0.0), (10, 2.0)],
            missing: None,
        };
        let t = |name: &str, factor| Threshold {
            name: name.into(),
            severity: Severity::Page,
            factor,
        };
        let svg = burn(&s, &[t("page-fast", 14.4), t("page-slow", 6.0)], "x");
        assert!(svg.contains("data-threshold=\"page-fast\" data-factor=\"14.4\""));
        assert!(svg.contains("data-threshold=\"page-slow\" data-factor=\"6\""));
        // Top of the scale = 14.4 · 1.1: the 14.4 line sits below the top edge.
        let y = |v: f64| 10.0 + (1.0 - v / (14.4 * 1.1)) * 146.0;
        assert!(svg.contains(&format!("y1=\"{:.1}\"", y(14.4))));
        assert!(svg.contains(&format!(
            "data-series=\"burn\" points=\"48.0,156.0 548.0,{:.1}\"",
            y(2.0)
        )));
    }
}
