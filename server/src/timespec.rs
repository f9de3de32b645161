//! Time values: Go durations (`"24h"`, `"-5m"`, `"1h30m"`, plus `d` for days on the command
//! line), RFC 3339 timestamps, and formatting for humans.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A time value that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid time or duration {0:?}: expected e.g. 5m, 24h, 30d or an RFC 3339 timestamp")]
pub struct TimeError(String);

/// Parses a Go duration (units ns, us, µs, ms, s, m, h, and d) into whole seconds.
pub fn parse_duration(s: &str) -> Result<i64, TimeError> {
    let err = || TimeError(s.to_string());
    let (neg, mut rest) = match s.trim() {
        t if t.starts_with('-') => (true, &t[1..]),
        t => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest.is_empty() {
        return Err(err());
    }
    if rest == "0" {
        return Ok(0);
    }
    let mut nanos: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return Err(err()),
        };
        let value: f64 = num.parse().map_err(|_| err())?;
        nanos += (value * scale as f64) as i128;
        rest = tail;
    }
    let secs = i64::try_from(nanos / 1_000_000_000).map_err(|_| err())?;
    Ok(if neg { -secs } else { secs })
}

/// A positive duration in seconds (command-line `--ttl`).
pub fn parse_ttl(s: &str) -> Result<u64, TimeError> {
    match parse_duration(s)? {
        secs if secs > 0 => Ok(secs as u64),
        _ => Err(TimeError(s.to_string())),
    }
}

/// A request's `validAfter`/`validBefore`: `""` is unset, a duration is relative to `now`,
/// anything else must be RFC 3339.
pub fn parse_instant(s: &str, now: u64) -> Result<Option<u64>, TimeError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(d) = parse_duration(s) {
        return Ok(Some(now.saturating_add_signed(d)));
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimeError(s.to_string()))?;
    u64::try_from(t.unix_timestamp())
        .map(Some)
        .map_err(|_| TimeError(s.to_string()))
}

/// RFC 3339 UTC for a Unix time.
pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|u| OffsetDateTime::from_unix_timestamp(u).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("-5m").unwrap(), -300);
        assert_eq!(parse_duration("1.5h").unwrap(), 5400);
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
        assert_eq!(parse_duration("1500ms").unwrap(), 1);
        for bad in ["", "5", "m", "5x", "1h-3m", "--5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_ttl("0s").is_err());
    }

    #[test]
    fn instants() {
        assert_eq!(parse_instant("", 100).unwrap(), None);
        assert_eq!(parse_instant("-1m", 100).unwrap(), Some(40));
        assert_eq!(
            parse_instant("2026-01-01T00:00:00Z", 0).unwrap(),
            Some(1_767_225_600)
        );
        assert!(parse_instant("tomorrow", 0).is_err());
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
