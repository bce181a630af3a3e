//! Timestamps as Docker writes and reads them: RFC 3339 in UTC with
//! nanoseconds ("2024-05-01T12:00:00.123456789Z"), "--since" values
//! (a timestamp, Unix seconds, or a duration such as "10m"), and the
//! human durations of `ps` ("Up 3 minutes", "5 seconds ago").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type Nanos = i128;

pub fn now() -> Nanos {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as Nanos,
        Err(e) => -(e.duration().as_nanos() as Nanos),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 in UTC with nine fractional digits, as Docker's logs.
pub fn rfc3339(t: Nanos) -> String {
    let secs = t.div_euclid(1_000_000_000) as i64;
    let nanos = t.rem_euclid(1_000_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Parse RFC 3339 ("2024-05-01T12:00:00Z", fractional seconds and a
/// "+02:00" offset allowed).
pub fn parse_rfc3339(s: &str) -> Option<Nanos> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut dp = date.splitn(3, '-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    // Split the time from its zone: "Z", "+hh:mm" or "-hh:mm".
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0i64)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = z[1..].split_once(':')?;
        (
            t,
            sign * (hh.parse::<i64>().ok()? * 3600 + mm.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut tp = hms.splitn(3, ':');
    let h: i64 = tp.next()?.parse().ok()?;
    let mi: i64 = tp.next()?.parse().ok()?;
    let se: i64 = tp.next()?.parse().ok()?;
    if h > 23 || mi > 59 || se > 60 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: i128 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        nanos += (b - b'0') as i128 * 10i128.pow(8 - i as u32);
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs as i128 * 1_000_000_000 + nanos)
}

/// A Go-style duration: "10s", "5m", "1h30m", "250ms".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += num * mult;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// `--since` and `--until`: a timestamp, Unix seconds (with an optional
/// fraction), or a duration before `now`.
pub fn parse_since(s: &str, now: Nanos) -> Option<Nanos> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    if let Some(d) = parse_duration(s) {
        return Some(now - d.as_nanos() as Nanos);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i128 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        nanos += (b - b'0') as i128 * 10i128.pow(8 - i as u32);
    }
    Some(secs as i128 * 1_000_000_000 + nanos)
}

/// Docker's `units.HumanDuration`: "Less than a second", "5 seconds",
/// "About a minute", "3 minutes", "About an hour", "2 hours", "3 days"...
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = minutes / 60;
    if secs < 1 {
        "Less than a second".into()
    } else if secs == 1 {
        "1 second".into()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// The time between `then` and `now` as a [`Duration`] (zero if negative).
pub fn since(then: Nanos, now: Nanos) -> Duration {
    Duration::from_nanos((now - then).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = 1_714_564_800_123_456_789i128;
        let s = rfc3339(t);
        assert_eq!(s, "2024-05-01T12:00:00.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800_000_000_000)
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn since_values() {
        let now = 1_000_000_000_000_000_000i128;
        assert_eq!(parse_since("10s", now), Some(now - 10_000_000_000));
        assert_eq!(parse_since("1h30m", now), Some(now - 5_400_000_000_000));
        assert_eq!(
            parse_since("1700000000", now),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_since("1700000000.5", now),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_since("soon", now), None);
    }

    #[test]
    fn human_durations_as_docker() {
        assert_eq!(human(Duration::from_millis(300)), "Less than a second");
        assert_eq!(human(Duration::from_secs(5)), "5 seconds");
        assert_eq!(human(Duration::from_secs(70)), "About a minute");
        assert_eq!(human(Duration::from_secs(180)), "3 minutes");
        assert_eq!(human(Duration::from_secs(3700)), "About an hour");
        assert_eq!(human(Duration::from_secs(3 * 86400)), "3 days");
    }
}
