//! `autional-bench-plot`: draws the refresh benchmark as one self-contained SVG, with no plotting
//! library (the SVG text is written here).
//!
//! Input is a JSON-lines file of measured rows as `autional-bench --json FILE` appends them, one
//! object per line with at least `label`, `c`, `rps` and `p99_ms` (`commit`, `date`, `pinned`,
//! `dpop` and `target` are used when present; other fields are ignored; lines that are not JSON or
//! lack a number for one of those four, e.g. a null, are skipped with a warning). Each `label` is
//! one series; repeated (label, C) rows are reduced to their median throughput and median p99. The
//! picture has two panels sharing one legend: refreshes/s against concurrency (linear, from 0)
//! and p99 latency against concurrency (log10). Peer series are drawn in warm colours, autional
//! in cool ones, DPoP series dashed with hollow markers.
//!
//! `bench/run` passes the same `--json` file to each of its runs and then draws it, for example
//! `autional-bench-plot --input rows.jsonl --output bench/results/refresh.svg
//!  --labels "autional sqlite,peer sqlite,peer memory,autional sqlite dpop"`.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Draw refreshes/s and p99 latency against concurrency as an SVG")]
struct Args {
    /// JSON-lines file of measured rows (one object per line).
    #[arg(long)]
    input: PathBuf,
    /// SVG file to write (its parent directory is created if missing).
    #[arg(long)]
    output: PathBuf,
    /// Title line at the top of the picture.
    #[arg(long, default_value = "autional refresh grant: throughput and p99 latency")]
    title: String,
    /// Comma-separated series labels to draw, in this order (default: all, in first-seen order).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
}

struct Row {
    label: String,
    c: u64,
    rps: f64,
    p99: f64,
    commit: Option<String>,
    date: Option<String>,
    pinned: Option<bool>,
    dpop: bool,
    peer: bool,
}

struct Series {
    label: String,
    dpop: bool,
    peer: bool,
    /// (C, median refreshes/s, median p99 ms), sorted by C.
    points: Vec<(u64, f64, f64)>,
}

fn parse_row(line: &str) -> Option<Row> {
    let v: Value = serde_json::from_str(line).ok()?;
    let label = v.get("label")?.as_str()?.to_string();
    let c = v
        .get("c")
        .and_then(|c| c.as_u64().or_else(|| c.as_f64().map(|f| f as u64)))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Row {
        c,
        rps: v.get("rps")?.as_f64()?,
        p99: v.get("p99_ms")?.as_f64()?,
        commit: s("commit"),
        date: s("date"),
        pinned: v.get("pinned").and_then(Value::as_bool),
        dpop: v.get("dpop").and_then(Value::as_bool).unwrap_or(false) || label.split(' ').any(|w| w == "dpop"),
        peer: s("target").as_deref() == Some("peer") || label.starts_with("peer"),
        label,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Groups rows into series (first-seen order) with the median rps and p99 per C.
fn build_series(rows: &[Row]) -> Vec<Series> {
    let mut labels: Vec<&str> = Vec::new();
    for r in rows {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    labels
        .into_iter()
        .map(|label| {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.label == label).collect();
            let mut cs: Vec<u64> = mine.iter().map(|r| r.c).collect();
            cs.sort_unstable();
            cs.dedup();
            let points = cs
                .into_iter()
                .map(|c| {
                    let at: Vec<&&Row> = mine.iter().filter(|r| r.c == c).collect();
                    (
                        c,
                        median(at.iter().map(|r| r.rps).collect()),
                        median(at.iter().map(|r| r.p99).collect()),
                    )
                })
                .collect();
            Series {
                label: label.to_string(),
                dpop: mine.iter().any(|r| r.dpop),
                peer: mine[0].peer,
                points,
            }
        })
        .collect()
}

/// A "nice" step (1, 2, 2.5 or 5 times a power of ten) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let exp = 10f64.powf(raw.log10().floor());
    let f = raw / exp;
    let nice = [1.0, 2.0, 2.5, 5.0]
        .into_iter()
        .find(|&n| f <= n + 1e-9)
        .unwrap_or(10.0);
    nice * exp
}

/// Tick values from 0 up to a rounded top at or above `max` (with ~5% headroom), about `n` steps.
fn linear_ticks(max: f64, n: usize) -> Vec<f64> {
    let max = if max > 0.0 { max * 1.05 } else { 1.0 };
    let step = nice_step(max / n as f64);
    let steps = (max / step - 1e-9).ceil() as usize;
    (0..=steps).map(|i| i as f64 * step).collect()
}

/// Log10 axis range and ticks: the 1-2-5 values from the largest one below `min` to the smallest
/// one above `max` (each with ~10% headroom). Needs `0 < min <= max`.
fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let (lo, hi) = (min / 1.1, max * 1.1);
    let mut ticks = Vec::new();
    for e in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
        for m in [1.0, 2.0, 5.0] {
            ticks.push(m * 10f64.powi(e));
        }
    }
    let first = ticks.iter().rposition(|&t| t <= lo).unwrap_or(0);
    let last = ticks.iter().position(|&t| t >= hi).unwrap_or(ticks.len() - 1);
    ticks[first..=last].to_vec()
}

/// Maps `v` from the domain `[d0, d1]` linearly onto the range `[r0, r1]`.
fn scale(v: f64, (d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> f64 {
    if d1 == d0 {
        (r0 + r1) / 2.0
    } else {
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// Tick label: integers plainly, small values with up to three decimals.
fn fmt_num(v: f64) -> String {
    if v >= 1.0 && (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

const COOL: [&str; 6] = ["#1f5fa8", "#17a2b8", "#6a4fb3", "#2e8b57", "#5b9bd5", "#0b3d66"];
const WARM: [&str; 5] = ["#d62728", "#ff7f0e", "#c9a100", "#8c3b1e", "#e377c2"];

fn colours(series: &[Series]) -> Vec<&'static str> {
    let (mut cool, mut warm) = (0, 0);
    series
        .iter()
        .map(|s| {
            let (pal, i): (&[&str], &mut usize) = if s.peer { (&WARM, &mut warm) } else { (&COOL, &mut cool) };
            *i += 1;
            pal[(*i - 1) % pal.len()]
        })
        .collect()
}

const W: f64 = 1000.0;
const TOP: f64 = 90.0;
const BOTTOM: f64 = 365.0;
const DASH: &str = r#" stroke-dasharray="7 4""#;

/// Appends `<text>` at (x, y) with the given extra attributes; the content is escaped.
fn text(svg: &mut String, (x, y): (f64, f64), attrs: &str, content: &str) {
    let _ = writeln!(svg, r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{}</text>"#, esc(content));
}

/// Appends a `<line>` from `a` to `b` with the given extra attributes.
fn line(svg: &mut String, a: (f64, f64), b: (f64, f64), attrs: &str) {
    let _ = writeln!(
        svg,
        r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" {attrs}/>"#,
        a.0, a.1, b.0, b.1
    );
}

/// Appends a series marker (hollow for DPoP series), with an optional hover tooltip.
fn marker(svg: &mut String, (x, y): (f64, f64), s: &Series, colour: &str, tip: &str) {
    let fill = if s.dpop { "#ffffff" } else { colour };
    let tip = if tip.is_empty() {
        String::new()
    } else {
        format!("<title>{}</title>", esc(tip))
    };
    let _ = writeln!(
        svg,
        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{fill}" stroke="{colour}" stroke-width="1.5">{tip}</circle>"#
    );
}

fn is_decade(t: f64) -> bool {
    (t.log10() - t.log10().round()).abs() < 1e-9
}

struct Panel<'a> {
    x: (f64, f64),
    title: &'a str,
    y_title: &'a str,
    ticks: Vec<f64>,
    log: bool,
    value: fn(&(u64, f64, f64)) -> f64,
    unit: &'a str,
}

impl Panel<'_> {
    fn y(&self, v: f64) -> f64 {
        let (lo, hi) = (self.ticks[0], *self.ticks.last().unwrap());
        if self.log {
            scale(v.max(lo).log10(), (lo.log10(), hi.log10()), (BOTTOM, TOP))
        } else {
            scale(v, (lo, hi), (BOTTOM, TOP))
        }
    }

    fn draw(&self, svg: &mut String, cs: &[u64], series: &[Series], colours: &[&str]) {
        let (x0, x1) = self.x;
        let cx = |c: u64| {
            let i = cs.iter().position(|&x| x == c).unwrap_or(0);
            scale(i as f64 + 0.5, (0.0, cs.len() as f64), (x0, x1))
        };
        let (mid, ym) = ((x0 + x1) / 2.0, (TOP + BOTTOM) / 2.0);
        text(
            svg,
            (mid, TOP - 12.0),
            r#"text-anchor="middle" font-size="14" font-weight="bold""#,
            self.title,
        );
        // On a log axis spanning many decades only the decades are labelled.
        let sparse = self.log && self.ticks.iter().filter(|&&t| is_decade(t)).count() > 3;
        for &t in &self.ticks {
            let y = self.y(t);
            let minor = self.log && !is_decade(t);
            line(
                svg,
                (x0, y),
                (x1, y),
                if minor {
                    r##"stroke="#eeeeee""##
                } else {
                    r##"stroke="#dddddd""##
                },
            );
            if !(minor && sparse) {
                text(
                    svg,
                    (x0 - 6.0, y + 4.0),
                    r##"text-anchor="end" font-size="11" fill="#444""##,
                    &fmt_num(t),
                );
            }
        }
        for &c in cs {
            line(svg, (cx(c), TOP), (cx(c), BOTTOM), r##"stroke="#f0f0f0""##);
            text(
                svg,
                (cx(c), BOTTOM + 16.0),
                r##"text-anchor="middle" font-size="11" fill="#444""##,
                &c.to_string(),
            );
        }
        let (w, h) = (x1 - x0, BOTTOM - TOP);
        let _ = writeln!(
            svg,
            r##"<rect x="{x0}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##
        );
        let x_title = "concurrency C (concurrent refresh chains)";
        text(
            svg,
            (mid, BOTTOM + 36.0),
            r#"text-anchor="middle" font-size="12""#,
            x_title,
        );
        let rotate = format!(
            r#"text-anchor="middle" font-size="12" transform="rotate(-90 {} {ym})""#,
            x0 - 54.0
        );
        text(svg, (x0 - 54.0, ym), &rotate, self.y_title);
        for (s, colour) in series.iter().zip(colours) {
            let at = |p: &(u64, f64, f64)| (cx(p.0), self.y((self.value)(p)));
            // A log axis cannot show zero (e.g. a p99 of a run that measured nothing): leave it out.
            let shown: Vec<_> = s.points.iter().filter(|p| !self.log || (self.value)(p) > 0.0).collect();
            let pts: Vec<String> = shown.iter().map(|p| format!("{:.1},{:.1}", at(p).0, at(p).1)).collect();
            let dash = if s.dpop { DASH } else { "" };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                pts.join(" ")
            );
            for p in shown {
                let v = fmt_num(((self.value)(p) * 100.0).round() / 100.0);
                marker(
                    svg,
                    at(p),
                    s,
                    colour,
                    &format!("{}, C={}: {v} {}", s.label, p.0, self.unit),
                );
            }
        }
    }
}

fn render(title: &str, subtitle: &str, series: &[Series]) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let mut cs: Vec<u64> = all().map(|p| p.0).collect();
    cs.sort_unstable();
    cs.dedup();
    let max_rps = all().map(|p| p.1).fold(0.0, f64::max);
    let p99s: Vec<f64> = all().map(|p| p.2).filter(|&v| v > 0.0).collect();
    let p99_ticks = match p99s.iter().copied().reduce(f64::min) {
        Some(min) => log_ticks(min, p99s.iter().copied().fold(min, f64::max)),
        None => vec![1.0, 10.0],
    };
    let colours = colours(series);

    // Legend: items left to right, wrapped to the width, each row centred under the panels.
    let item_w = |s: &Series| 62.0 + 7.4 * s.label.chars().count() as f64;
    let mut rows: Vec<Vec<usize>> = vec![vec![]];
    let mut used = 0.0;
    for (i, s) in series.iter().enumerate() {
        if used + item_w(s) > W - 60.0 && !rows.last().unwrap().is_empty() {
            rows.push(vec![]);
            used = 0.0;
        }
        used += item_w(s);
        rows.last_mut().unwrap().push(i);
    }
    let legend_top = BOTTOM + 66.0;
    let height = legend_top + 22.0 * rows.len() as f64 + 2.0;

    let mut svg = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    svg.push_str(r#"<svg xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" "#);
    let _ = writeln!(svg, r#"width="{W}" height="{height}" viewBox="0 0 {W} {height}">"#);
    svg.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");
    text(
        &mut svg,
        (W / 2.0, 26.0),
        r#"text-anchor="middle" font-size="18" font-weight="bold""#,
        title,
    );
    text(
        &mut svg,
        (W / 2.0, 48.0),
        r##"text-anchor="middle" font-size="12" fill="#555""##,
        subtitle,
    );
    let panels = [
        Panel {
            x: (90.0, 470.0),
            title: "refreshes/s vs concurrency",
            y_title: "refreshes/s",
            ticks: linear_ticks(max_rps, 5),
            log: false,
            value: |p| p.1,
            unit: "refreshes/s",
        },
        Panel {
            x: (600.0, 980.0),
            title: "p99 latency (ms) vs concurrency",
            y_title: "p99 latency (ms, log scale)",
            ticks: p99_ticks,
            log: true,
            value: |p| p.2,
            unit: "ms p99",
        },
    ];
    for panel in &panels {
        panel.draw(&mut svg, &cs, series, &colours);
    }
    for (r, row) in rows.iter().enumerate() {
        let y = legend_top + 22.0 * r as f64;
        let mut x = (W - row.iter().map(|&i| item_w(&series[i])).sum::<f64>()) / 2.0;
        for &i in row {
            let (s, colour) = (&series[i], colours[i]);
            let dash = if s.dpop { DASH } else { "" };
            line(
                &mut svg,
                (x, y),
                (x + 28.0, y),
                &format!(r#"stroke="{colour}" stroke-width="2"{dash}"#),
            );
            marker(&mut svg, (x + 14.0, y), s, colour, "");
            text(&mut svg, (x + 34.0, y + 4.0), r#"font-size="12""#, &s.label);
            x += item_w(s);
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// "commit a, b, 2026-11-26, one pinned core, C concurrent refresh chains"
fn subtitle(rows: &[Row]) -> String {
    let distinct = |f: fn(&Row) -> Option<&String>| {
        let mut v: Vec<&str> = Vec::new();
        for s in rows.iter().filter_map(f) {
            if !v.contains(&s.as_str()) {
                v.push(s);
            }
        }
        v.join(", ")
    };
    let mut parts = Vec::new();
    let commits = distinct(|r| r.commit.as_ref());
    if !commits.is_empty() {
        parts.push(format!("commit {commits}"));
    }
    let dates = distinct(|r| r.date.as_ref());
    if !dates.is_empty() {
        parts.push(dates);
    }
    if rows.iter().all(|r| r.pinned == Some(true)) {
        parts.push("one pinned core".into());
    } else if rows.iter().any(|r| r.pinned == Some(true)) {
        parts.push("one pinned core unless marked unpinned".into());
    }
    parts.push("C concurrent refresh chains".into());
    parts.join(", ")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match parse_row(line) {
            Some(r) => rows.push(r),
            None => eprintln!(
                "warning: {}:{}: skipping row (not JSON, or no label, c, rps or p99_ms)",
                args.input.display(),
                n + 1
            ),
        }
    }
    if let Some(wanted) = &args.labels {
        let wanted: Vec<&str> = wanted.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
        for l in &wanted {
            if !rows.iter().any(|r| r.label == *l) {
                eprintln!("warning: no rows for series {l:?}");
            }
        }
        rows.retain(|r| wanted.contains(&r.label.as_str()));
        rows.sort_by_key(|r| wanted.iter().position(|l| *l == r.label));
    }
    if rows.is_empty() {
        bail!("no rows to plot in {}", args.input.display());
    }
    let svg = render(&args.title, &subtitle(&rows), &build_series(&rows));
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.output, svg).with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round() {
        assert_eq!(
            linear_ticks(8000.0, 5),
            vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(linear_ticks(700.0, 5), vec![0.0, 200.0, 400.0, 600.0, 800.0]);
        assert_eq!(
            linear_ticks(2300.0, 5),
            vec![0.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0]
        );
    }

    #[test]
    fn log_ticks_cover_the_data_with_1_2_5_steps() {
        assert_eq!(log_ticks(1.0, 40.0), vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]);
        assert_eq!(log_ticks(1.2, 46.0), vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(log_ticks(3.0, 8.0), vec![2.0, 5.0, 10.0]);
    }

    #[test]
    fn scale_and_text_helpers() {
        assert_eq!(scale(5.0, (0.0, 10.0), (350.0, 90.0)), 220.0);
        assert_eq!(scale(1.0, (1.0, 1.0), (0.0, 10.0)), 5.0);
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(10000.0), "10000");
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn median_of_repeats() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
    }
}
