//! `/Appointment` create, read, update and search (§4).

use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use jiff::Timestamp;
use jiff::fmt::rfc2822;

use super::outcome::{FhirError, JSON, json};
use super::paging::render_page;
use crate::sandbox::appointments::search::Filter;
use crate::sandbox::appointments::{AppointmentWrite, UpdateContext, write};
use crate::sandbox::params::Params;
use crate::sandbox::state::{Shared, today_utc};

/// Canvas answers create and update with the JSON literal `null` (§4).
fn null_body(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::build(status);
    builder.content_type(JSON);
    builder
}

pub async fn create(
    shared: Data<Shared>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, FhirError> {
    let sent = AppointmentWrite::parse(&body)?;
    let draft = write::new_draft(&sent, &shared.clinic)?;
    let id = uuid::Uuid::new_v4().to_string();
    let reject = shared.reject_double_booking();
    let faults = shared.faults();
    let late = if faults.late_commit_rate > 0.0 && fastrand::f64() < faults.late_commit_rate {
        fastrand::u64(1..=faults.late_commit_max_ms.max(1))
    } else {
        faults.commit_late_ms
    };
    if late > 0 {
        // Slow to commit: a client that gives up finds nothing yet, and the appointment
        // appears later all the same (a task of its own, so a dropped request cannot stop it).
        let (shared, id) = (shared.clone(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(late)).await;
            let stored =
                shared.with_book(|book| book.insert(id.clone(), draft, reject, Timestamp::now()));
            if stored.is_ok() {
                shared.notify(&id, true);
            }
            stored
        })
        .await
        .map_err(|_| FhirError::unavailable())??;
    } else {
        shared.with_book(|book| book.insert(id.clone(), draft, reject, Timestamp::now()))?;
        shared.notify(&id, true);
    }
    // Stored, then slow to answer: the ambiguous timeout a client must survive.
    let stall = shared.faults().stall_after_create_ms;
    if stall > 0 {
        tokio::time::sleep(Duration::from_millis(stall)).await;
    }
    let host = req.connection_info().host().to_owned();
    Ok(null_body(StatusCode::CREATED)
        .insert_header((
            header::LOCATION,
            format!("http://{host}/Appointment/{id}/_history/1"),
        ))
        .body("null"))
}

pub async fn read(shared: Data<Shared>, id: Path<String>) -> Result<HttpResponse, FhirError> {
    let appointment = shared
        .with_book(|book| book.get(&id).map(|r| r.to_fhir()))
        .ok_or_else(|| FhirError::not_found("Appointment", &id))?;
    Ok(json(StatusCode::OK, &appointment))
}

/// An HTTP-date; an invalid one is ignored, as RFC 9110 asks of recipients.
fn if_unmodified_since(req: &HttpRequest) -> Option<Timestamp> {
    let value = req
        .headers()
        .get(header::IF_UNMODIFIED_SINCE)?
        .to_str()
        .ok()?;
    rfc2822::DateTimeParser::new().parse_timestamp(value).ok()
}

pub async fn update(
    shared: Data<Shared>,
    req: HttpRequest,
    id: Path<String>,
    body: Bytes,
) -> Result<HttpResponse, FhirError> {
    let sent = AppointmentWrite::parse(&body)?;
    let ctx = UpdateContext {
        clinic: &shared.clinic,
        today: today_utc(),
        now: Timestamp::now(),
        reject_double_booking: shared.reject_double_booking(),
        if_unmodified_since: if_unmodified_since(&req),
    };
    shared.with_book(|book| book.update(&id, &sent, ctx))?;
    shared.notify(&id, false);
    Ok(null_body(StatusCode::OK).body("null"))
}

pub async fn search(shared: Data<Shared>, req: HttpRequest) -> Result<HttpResponse, FhirError> {
    let query = req.query_string().to_owned();
    // A page of a hundred appointments takes a while to render and write out: off the worker
    // thread, so that the requests its connections bring meanwhile (a Slot search, a booking)
    // are not held up behind it. Only the page is rendered under the lock.
    let body = actix_web::web::block(move || -> Result<Vec<u8>, FhirError> {
        let params = Params::parse(&query);
        let filter = Filter::from_params(&params)?;
        let page =
            shared.with_book(|book| render_page(&params, filter.apply(book), |r| r.to_fhir()))?;
        serde_json::to_vec(&page.bundle("/Appointment", &params)).map_err(|_| FhirError::internal())
    })
    .await
    .map_err(|_| FhirError::internal())??;
    Ok(HttpResponse::Ok().content_type(JSON).body(body))
}
