//! FHIR search parameters as Fumage reads them: ordered pairs, comma lists, `system|value`
//! tokens, prefixed dates, and `_count`/`_offset` paging (canvas-fhir.md §4, §6, §7).

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

use crate::canvas::fhir::Instant;

/// Default and maximum page sizes ("can change without warning", §7).
pub const DEFAULT_COUNT: usize = 10;
pub const MAX_COUNT: usize = 100;

/// What every search accepts besides its own parameters: Fumage's offset paging (§7), which
/// slotgate sends on every search and which every `next` link carries.
pub const PAGING: [&str; 2] = ["_count", "_offset"];

/// The query string of a search, in the order it was sent.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated value of every occurrence, or `None` when the name is absent.
    pub fn list(&self, name: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .all(name)
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        self.first(name).map(|_| values)
    }

    /// `true`/`false` (case-insensitive), `None` when absent.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, String> {
        match self.first(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(format!("{name}: expected true or false, got '{other}'")),
        }
    }

    pub fn page(&self) -> Result<Page, String> {
        let number = |name: &str, default: usize| -> Result<usize, String> {
            match self.first(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{name}: expected a non-negative integer, got '{v}'")),
            }
        };
        Ok(Page {
            count: number("_count", DEFAULT_COUNT)?.clamp(1, MAX_COUNT),
            offset: number("_offset", 0)?,
        })
    }

    /// Refuses the first parameter that is neither one of `known` nor paging. canvas-fhir.md
    /// says nothing of how Fumage treats a parameter it does not support, and ignoring one
    /// answers unfiltered results to a client that believes it filtered; a 400 naming the
    /// parameter shows the mistake where it is made. Only the name is echoed, never a value.
    pub fn reject_unknown(&self, resource: &str, known: &[&str]) -> Result<(), String> {
        let unknown = self
            .0
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|k| !PAGING.contains(k) && !known.contains(k));
        match unknown {
            None => Ok(()),
            Some(name) => Err(format!("{name}: unknown {resource} search parameter")),
        }
    }

    /// The pairs other than paging, to rebuild `link` URLs that keep the caller's filters.
    pub fn without_paging(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .filter(|(k, _)| k != "_count" && k != "_offset")
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub count: usize,
    pub offset: usize,
}

impl Page {
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.count)
            .collect()
    }
}

/// A token search value: `value`, `system|value`, `system|` (any value), `|value` (no system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// `None`: any system; `Some("")`: no system.
    pub system: Option<String>,
    /// `None`: any value.
    pub value: Option<String>,
}

impl Token {
    pub fn parse(text: &str) -> Token {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match text.split_once('|') {
            None => Token {
                system: None,
                value: non_empty(text),
            },
            Some((system, value)) => Token {
                system: Some(system.to_owned()),
                value: non_empty(value),
            },
        }
    }

    pub fn matches(&self, system: Option<&str>, value: Option<&str>) -> bool {
        let system_ok = match self.system.as_deref() {
            None => true,
            Some("") => system.is_none_or(str::is_empty),
            Some(wanted) => system == Some(wanted),
        };
        system_ok && self.value.as_deref().is_none_or(|v| value == Some(v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

/// A prefixed date search value. A date means its whole UTC day; an instant, itself. Both
/// become the range `[lo, hi)`, so one comparison table serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateBound {
    prefix: Prefix,
    lo: Timestamp,
    hi: Timestamp,
}

/// Midnight UTC at the start of `date`.
pub fn utc_midnight(date: Date) -> Timestamp {
    jiff::tz::Offset::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A strict `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-';
    shape.then(|| text.parse().ok()).flatten()
}

impl DateBound {
    pub fn parse(text: &str) -> Result<DateBound, String> {
        let prefixes = [
            ("eq", Prefix::Eq),
            ("ne", Prefix::Ne),
            ("gt", Prefix::Gt),
            ("lt", Prefix::Lt),
            ("ge", Prefix::Ge),
            ("le", Prefix::Le),
        ];
        let (prefix, rest) = prefixes
            .iter()
            .find_map(|(p, prefix)| text.strip_prefix(p).map(|rest| (*prefix, rest)))
            .unwrap_or((Prefix::Eq, text));
        // A `+` offset sent unencoded arrives as a space.
        let rest = rest.replace(' ', "+");
        let (lo, hi) = if let Some(date) = parse_date(&rest) {
            let next = date.tomorrow().map_err(|e| e.to_string())?;
            (utc_midnight(date), utc_midnight(next))
        } else {
            let at = Instant::parse(&rest)
                .map_err(|_| format!("'{text}' is not a date or date-time with offset"))?
                .timestamp;
            (at, at + SignedDuration::from_nanos(1))
        };
        Ok(DateBound { prefix, lo, hi })
    }

    pub fn matches(&self, at: Timestamp) -> bool {
        let within = self.lo <= at && at < self.hi;
        match self.prefix {
            Prefix::Eq => within,
            Prefix::Ne => !within,
            Prefix::Gt => at >= self.hi,
            Prefix::Ge => at >= self.lo,
            Prefix::Lt => at < self.lo,
            Prefix::Le => at < self.hi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn date_bounds_cover_whole_utc_days() {
        let day = DateBound::parse("2026-06-18").unwrap();
        assert!(day.matches(ts("2026-06-18T00:00:00Z")));
        assert!(day.matches(ts("2026-06-18T23:59:59Z")));
        assert!(!day.matches(ts("2026-06-19T00:00:00Z")));
        let le = DateBound::parse("le2026-06-18").unwrap();
        assert!(le.matches(ts("2026-06-18T23:00:00Z")));
        let gt = DateBound::parse("gt2026-06-18").unwrap();
        assert!(!gt.matches(ts("2026-06-18T23:00:00Z")));
        assert!(gt.matches(ts("2026-06-19T00:00:00Z")));
        let lt = DateBound::parse("lt2026-06-18").unwrap();
        assert!(lt.matches(ts("2026-06-17T23:59:00Z")));
        assert!(!lt.matches(ts("2026-06-18T00:00:00Z")));
    }

    #[test]
    fn instant_bounds_compare_exactly() {
        let eq = DateBound::parse("eq2026-06-18T09:00:00-07:00").unwrap();
        assert!(eq.matches(ts("2026-06-18T16:00:00Z")));
        assert!(!eq.matches(ts("2026-06-18T16:00:01Z")));
        let ge = DateBound::parse("ge2026-06-18T16:00:00 00:00").unwrap();
        assert!(ge.matches(ts("2026-06-18T16:00:00Z")));
        let ne = DateBound::parse("ne2026-06-18T16:00:00Z").unwrap();
        assert!(!ne.matches(ts("2026-06-18T16:00:00Z")));
        assert!(DateBound::parse("ge18/06/2026").is_err());
    }

    #[test]
    fn tokens_follow_the_fhir_forms() {
        let m = |t: &str, s: Option<&str>, v: &str| Token::parse(t).matches(s, Some(v));
        assert!(m("abc", Some("x"), "abc"));
        assert!(m("x|abc", Some("x"), "abc"));
        assert!(!m("y|abc", Some("x"), "abc"));
        assert!(m("x|", Some("x"), "anything"));
        assert!(m("|abc", None, "abc"));
        assert!(!m("|abc", Some("x"), "abc"));
    }

    #[test]
    fn unknown_parameters_are_named_and_paging_is_always_known() {
        let known = ["name", "_sort"];
        let p = Params::parse("name=x&_count=5&_offset=10&_sort=family");
        assert_eq!(p.reject_unknown("Patient", &known), Ok(()));
        let p = Params::parse("name=x&name:exact=y&emial=z");
        assert_eq!(
            p.reject_unknown("Patient", &known),
            Err("name:exact: unknown Patient search parameter".into())
        );
        assert!(Params::parse("").reject_unknown("Location", &[]).is_ok());
        assert!(
            Params::parse("_id=1")
                .reject_unknown("Schedule", &["actor"])
                .is_err()
        );
    }

    #[test]
    fn paging_defaults_and_clamps() {
        assert_eq!(
            Params::parse("").page().unwrap(),
            Page {
                count: 10,
                offset: 0
            }
        );
        assert_eq!(Params::parse("_count=500").page().unwrap().count, 100);
        assert!(Params::parse("_count=ten").page().is_err());
        let p = Params::parse("a=1&_count=5&b=x%2Fy&_offset=5");
        assert_eq!(
            p.without_paging().collect::<Vec<_>>(),
            [("a", "1"), ("b", "x/y")]
        );
    }
}
