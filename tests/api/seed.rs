//! The sandbox's demo clinic, as the tests refer to it (see src/sandbox/clinic/demo.rs).
#![allow(dead_code)]

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

pub const OKAFOR: &str = "c48de0f40beb4fee86f872da7a840cf9"; // CA; Oakland Mon-Sat
pub const REYES: &str = "f8caf3fdef4f451a8f708556591ee1c2"; // CA AZ TX WA; Oakland MWF, Phoenix Tue/Thu
pub const RAMAN: &str = "aa8c38d9494c404dbcf7e957b13ad502"; // TN; CA until today+10; Nashville
pub const OSEI: &str = "b4470023c548406cb4586209203354a7"; // NY NJ; Brooklyn 7-11; in person only
pub const WHITFIELD: &str = "f095654613f54e5f8e260eb5b4e52c6d"; // CA NY WA AZ TX; Oakland + Brooklyn weekends 8-12
pub const LINDQVIST: &str = "e43f924a27f242bfb3b95130e0350652"; // derm; NY; CA from today+20; Brooklyn Mon-Thu
pub const BELL: &str = "4a829176cbc043e8aa428e61f78a8cf0"; // derm in person; AZ; CA expired; Phoenix
pub const VASQUEZ: &str = "717b8aa30f2b4fc590e3e8ec9b99efec"; // behavioral; CA WA FL; Oakland evenings
pub const KIM: &str = "1bf21ed0b976409ea862be25ec429b39"; // behavioral; TN NY FL; Nashville + Brooklyn
pub const CHEN: &str = "041e387a6c714ef5a40930b7f8cf43c4"; // behavioral; no STATE licence
pub const HAYES: &str = "6421173d214542e4bbece9b3ccb4a1f4"; // inactive
pub const PARK: &str = "18e7f384238642fdbf422ec7eee550ac"; // not schedulable

pub const OAKLAND: &str = "388f8191-af1d-433a-93d7-6db62585ae1e";
pub const NASHVILLE: &str = "19d9a94f-82e8-41d9-bf35-29ebc86c68d7";
pub const BROOKLYN: &str = "0b4e6abb-b7fb-4f1c-97e9-1d7253d3d5a5";
pub const PHOENIX: &str = "7cbde114-c934-4d9d-b5ee-c8930a3550bc";

pub fn today() -> Date {
    Timestamp::now().to_zoned_datetime(TimeZone::UTC).date()
}

pub fn days(n: i64) -> Date {
    today().saturating_add(n.days())
}

/// The local dates of the next spring-forward and fall-back transitions of a zone.
pub fn next_dst_days(zone: &str) -> (Date, Date) {
    let tz = TimeZone::get(zone).unwrap();
    let mut spring = None;
    let mut fall = None;
    let mut previous = tz.to_offset(Timestamp::now());
    for t in tz.following(Timestamp::now()).take(4) {
        let date = t.timestamp().to_zoned_datetime(tz.clone()).date();
        if t.offset() > previous {
            spring.get_or_insert(date);
        } else {
            fall.get_or_insert(date);
        }
        previous = t.offset();
    }
    (spring.unwrap(), fall.unwrap())
}
