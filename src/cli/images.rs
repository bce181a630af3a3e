//! `hutch images`: the images in the store.

use clap::Args;

use crate::image::pull::human;
use crate::image::store::{ImageRecord, Store};

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only image ids
    #[arg(short, long)]
    pub quiet: bool,

    /// Output format: table or json
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,
}

/// One row per name (and one `<none>` row for an unnamed image).
fn rows(rec: &ImageRecord) -> Vec<(String, String)> {
    if rec.names.is_empty() {
        let repo = rec
            .digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map_or("<none>".to_string(), |(n, _)| n.to_string());
        return vec![(repo, "<none>".into())];
    }
    rec.names
        .iter()
        .map(|n| match n.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
            _ => (n.clone(), "<none>".into()),
        })
        .collect()
}

pub fn images(args: ImagesArgs) -> anyhow::Result<i32> {
    let store = Store::open()?;
    let index = store.index()?;
    match args.format.as_str() {
        "json" => {
            let list: Vec<serde_json::Value> = index
                .images
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "Id": i.id.hex(),
                        "Names": i.names,
                        "Digest": i.manifest.to_string(),
                        "RepoDigests": i.digests,
                        "Created": i.created,
                        "Size": i.size,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        "table" if args.quiet => {
            for i in &index.images {
                println!("{}", i.id.short());
            }
        }
        "table" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let mut table = vec![[
                "REPOSITORY".to_string(),
                "TAG".into(),
                "IMAGE ID".into(),
                "CREATED".into(),
                "SIZE".into(),
            ]];
            for i in &index.images {
                let created = i
                    .created
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .map_or("unknown".to_string(), |t| ago(now - t));
                for (repo, tag) in rows(i) {
                    table.push([
                        repo,
                        tag,
                        i.id.short().to_string(),
                        created.clone(),
                        human(i.size),
                    ]);
                }
            }
            let widths: Vec<usize> = (0..5)
                .map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0))
                .collect();
            for r in table {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
                    .collect();
                println!("{}", line.join("  ").trim_end());
            }
        }
        other => anyhow::bail!("unknown --format {other:?} (hint: table or json)"),
    }
    Ok(0)
}

/// Seconds since the epoch of `2024-01-02T03:04:05.123Z` (or `+hh:mm`).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut t = days * 86400 + h * 3600 + mi * 60 + se;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let oh: i64 = off.get(0..2)?.parse().ok()?;
        let om: i64 = off.get(3..5)?.parse().ok()?;
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        t -= sign * (oh * 3600 + om * 60);
    }
    Some(t)
}

fn ago(secs: i64) -> String {
    let s = secs.max(0);
    let (n, unit) = match s {
        0..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86399 => (s / 3600, "hour"),
        86400..=604799 => (s / 86400, "day"),
        604800..=2_678_399 => (s / 604800, "week"),
        2_678_400..=31_535_999 => (s / 2_678_400, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T12:00:00.5Z"), Some(1709294400));
        assert_eq!(parse_rfc3339("2024-03-01T13:00:00+01:00"), Some(1709294400));
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(ago(7200), "2 hours ago");
    }
}
