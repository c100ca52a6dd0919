//! Where the server keeps its data and how it is reached. Built from the command line and the environment
//! (`RAPPORT_*`), passed explicitly — there are no global settings.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A value that must never reach a log: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Which database to use: the embedded SQLite file in the data directory unless a URL says otherwise.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL, `sqlite://PATH` a SQLite file elsewhere. May hold a password.
    pub database_url: Option<Secret>,
}

/// Credentials applied on first start (and the admin token on every start).
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub token: Option<Secret>,
    pub email: Option<String>,
    pub password: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub store: StoreConfig,
    pub bind: SocketAddr,
    pub admin: AdminConfig,
    /// Hosted forms' rate limit and client address.
    pub forms: rapport_http::forms::FormsConfig,
    /// The time zone segments count days in ("today", "last 30 days"), as seconds east of UTC.
    pub utc_offset_seconds: i32,
}

/// Parses a UTC offset such as `+08:00`, `-05:30`, `+0800`, `Z` or `+00:00` into seconds east of UTC.
pub fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let text = text.trim();
    let invalid = || format!("{text:?} is not a UTC offset; write it like +08:00 or -05:30");
    if text.eq_ignore_ascii_case("z") {
        return Ok(0);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(invalid()),
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((hours, minutes)) => (hours, minutes),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let digits = |part: &str| (1..=2).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(hours) || !digits(minutes) {
        return Err(invalid());
    }
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    if hours > 14 || minutes > 59 || (hours == 14 && minutes > 0) {
        return Err(format!("{text:?} is out of range: offsets go from -14:00 to +14:00"));
    }
    Ok(sign * (hours * 3_600 + minutes * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Ok(8 * 3_600));
        assert_eq!(parse_utc_offset("-05:30"), Ok(-(5 * 3_600 + 30 * 60)));
        assert_eq!(parse_utc_offset("+0545"), Ok(5 * 3_600 + 45 * 60));
        assert_eq!(parse_utc_offset("+9"), Ok(9 * 3_600));
        assert_eq!(parse_utc_offset("Z"), Ok(0));
        assert_eq!(parse_utc_offset("+00:00"), Ok(0));
        assert!(parse_utc_offset("08:00").is_err());
        assert!(parse_utc_offset("+15:00").is_err());
        assert!(parse_utc_offset("+08:60").is_err());
        assert!(parse_utc_offset("+8:0:0").is_err());
        assert!(parse_utc_offset("").is_err());
    }
}
