//! Query-string parsing that names the offending parameter: unknown, repeated, empty or
//! malformed parameters are all a 400 `validation_failed` listing every problem at once.

use std::collections::BTreeMap;

use crate::error::{ApiError, FieldError};

pub struct Params {
    values: BTreeMap<String, String>,
    errors: Vec<FieldError>,
}

impl Params {
    pub fn parse(query: &str, allowed: &[&str]) -> Params {
        let mut values = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let name = name.into_owned();
            if !allowed.contains(&name.as_str()) {
                errors.push(FieldError {
                    field: name.chars().take(64).collect(),
                    message: format!(
                        "is not a parameter of this operation (expected one of {})",
                        allowed.join(", ")
                    ),
                });
            } else if values.insert(name.clone(), value.into_owned()).is_some() {
                errors.push(FieldError {
                    field: name,
                    message: "is given more than once".into(),
                });
            }
        }
        Params { values, errors }
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// The parameter parsed by `parse`, or `None` (recording why when it is present but bad).
    pub fn get<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.values.get(name)?.clone();
        if value.trim().is_empty() {
            self.error(name, "must not be empty");
            return None;
        }
        match parse(value.trim()) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// A required parameter.
    pub fn require<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if !self.values.contains_key(name) {
            self.error(name, "is required");
            return None;
        }
        self.get(name, parse)
    }

    pub fn text(&mut self, name: &str) -> Option<String> {
        self.get(name, |s| {
            if s.len() > 128 {
                Err("is too long".into())
            } else {
                Ok(s.to_owned())
            }
        })
    }

    /// Every problem found, or the go-ahead.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

pub fn integer(min: u32, max: u32) -> impl FnOnce(&str) -> Result<u32, String> {
    move |s| match s.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from {min} to {max}")),
    }
}

pub fn date(s: &str) -> Result<jiff::civil::Date, String> {
    if s.len() == 10
        && let Ok(d) = s.parse()
    {
        return Ok(d);
    }
    Err("must be a date like 2026-12-01".into())
}

pub fn time_zone(s: &str) -> Result<jiff::tz::TimeZone, String> {
    // Only IANA names: a fixed offset cannot follow DST.
    if (s.contains('/') || s == "UTC")
        && let Ok(tz) = jiff::tz::TimeZone::get(s)
    {
        return Ok(tz);
    }
    Err("must be an IANA time zone like America/Los_Angeles".into())
}

pub fn parsed<T: std::str::FromStr>(what: &'static str) -> impl FnOnce(&str) -> Result<T, String> {
    move |s| s.parse().map_err(|_| format!("is not {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_named() {
        let mut p = Params::parse("a=1&a=2&b=&zzz=1&c=x", &["a", "b", "c", "d"]);
        assert_eq!(p.text("b"), None);
        assert_eq!(p.get("c", integer(1, 5)), None);
        assert_eq!(p.require("d", integer(1, 5)), None);
        let e = p.finish().unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["a", "zzz", "b", "c", "d"]);
    }

    #[test]
    fn dates_and_zones() {
        assert!(date("2026-02-29").is_err());
        assert!(date("2026-2-1").is_err());
        assert_eq!(date("2028-02-29").unwrap().day(), 29);
        assert!(time_zone("America/New_York").is_ok());
        assert!(time_zone("UTC").is_ok());
        assert!(time_zone("+05:00").is_err());
        assert!(time_zone("Mars/Olympus").is_err());
    }
}
