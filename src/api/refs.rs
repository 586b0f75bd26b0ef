//! References to things, with their display names (contract "Shapes").

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "4150cd20de8a470aa570a852859ac87e", "name": "Amara Okafor MD"}))]
pub struct PractitionerRef {
    /// Canvas Practitioner id.
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "b3476a18-3f63-422d-87e7-b3dc0cd55060", "name": "Oakland Clinic"}))]
pub struct LocationRef {
    /// Canvas Location id.
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"code": "INIV", "display": "Initial Visit"}))]
pub struct ReasonRef {
    pub code: String,
    pub display: String,
}
