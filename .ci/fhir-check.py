"""The FHIR surface, checked from outside with a FHIR library nobody here wrote.

Drives a running slotgate (on its sandbox) through metadata, $find, $hold and $book and a few
refusals, and validates every resource it answers with as FHIR R4 (4.0.1) with the
`fhir.resources` models (structure, cardinality, datatypes, no unknown elements), plus the
R4 rules those models do not enforce: required codes from their value sets, and no empty
arrays, objects or strings (FHIR JSON).

usage: fhir-check.py BASE_URL STAFF_TOKEN
"""

import json
import re
import sys
import urllib.error
import urllib.request
import uuid

from fhir.resources import construct_fhir_element

BASE, TOKEN = sys.argv[1].rstrip("/"), sys.argv[2]
PATIENT = "97491556534444838b94dbb0909b6b3d"  # a demo patient at home in California

APPOINTMENT_STATUS = {"proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
                      "noshow", "entered-in-error", "checked-in", "waitlist"}
PARTICIPATION = {"accepted", "declined", "tentative", "needs-action"}
ISSUE_TYPE = {"invalid", "structure", "required", "value", "invariant", "security", "login",
              "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
              "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid",
              "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error",
              "no-store", "exception", "timeout", "incomplete", "throttled", "informational"}
ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
checked = 0


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def json_rules(value, path):
    if isinstance(value, dict):
        if not value:
            fail(f"{path}: an empty object")
        for k, v in value.items():
            json_rules(v, f"{path}.{k}")
    elif isinstance(value, list):
        if not value:
            fail(f"{path}: an empty array")
        for i, v in enumerate(value):
            json_rules(v, f"{path}[{i}]")
    elif isinstance(value, str) and not value.strip():
        fail(f"{path}: an empty string")


def codes(resource, path):
    kind = resource["resourceType"]
    if "id" in resource and not ID.match(resource["id"]):
        fail(f"{path}: id {resource['id']!r} is not a FHIR id")
    if kind == "Appointment":
        if resource["status"] not in APPOINTMENT_STATUS:
            fail(f"{path}: Appointment.status {resource['status']!r}")
        for p in resource["participant"]:
            if p["status"] not in PARTICIPATION:
                fail(f"{path}: participant.status {p['status']!r}")
    elif kind == "OperationOutcome":
        for issue in resource["issue"]:
            if issue["severity"] not in {"fatal", "error", "warning", "information"}:
                fail(f"{path}: issue.severity {issue['severity']!r}")
            if issue["code"] not in ISSUE_TYPE:
                fail(f"{path}: issue.code {issue['code']!r}")
    elif kind == "Bundle":
        if resource["type"] != "searchset":
            fail(f"{path}: Bundle.type {resource['type']!r}")
        for i, entry in enumerate(resource.get("entry", [])):
            codes(entry["resource"], f"{path}.entry[{i}]")


def valid(resource, what):
    """Validates one resource as FHIR R4 and returns it."""
    global checked
    json_rules(resource, what)
    try:
        construct_fhir_element(resource["resourceType"], resource)
    except Exception as e:  # the library's own message names the element
        fail(f"{what} is not valid FHIR R4: {e}")
    codes(resource, what)
    checked += 1
    return resource


def call(method, path, body=None, token=TOKEN, key=None):
    request = urllib.request.Request(BASE + path, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if key:
        request.add_header("Idempotency-Key", key)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/fhir+json")
    try:
        with urllib.request.urlopen(request, data) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    if headers.get("Content-Type") != "application/fhir+json":
        fail(f"{method} {path}: Content-Type {headers.get('Content-Type')!r}")
    return status, json.loads(raw)


def parameters(*entries):
    return {"resourceType": "Parameters", "parameter": list(entries)}


def refused(status, body, want_status, want_code, what):
    if status != want_status:
        fail(f"{what}: {status}, not {want_status}: {body}")
    valid(body, what)
    got = body["issue"][0]["details"]["coding"][0]["code"]
    if got != want_code:
        fail(f"{what}: code {got}, not {want_code}")


status, cs = call("GET", "/fhir/r4/metadata", token=None)
assert status == 200, cs
valid(cs, "CapabilityStatement")
for op in cs["rest"][0]["resource"][0]["operation"]:
    status, d = call("GET", "/fhir/r4/" + op["definition"].split("/fhir/r4/", 1)[1], token=None)
    assert status == 200, d
    valid(d, f"OperationDefinition {op['name']}")

find = parameters(
    {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "FLUP"}},
    {"name": "patient-reference", "valueReference": {"reference": f"Patient/{PATIENT}"}},
    {"name": "_count", "valueInteger": 5},
)
# Today and the next 13 days: within every default booking window.
import datetime
today = datetime.date.today()
find["parameter"] += [{"name": "start", "valueDate": (today + datetime.timedelta(days=1)).isoformat()},
                      {"name": "end", "valueDate": (today + datetime.timedelta(days=13)).isoformat()}]
status, bundle = call("POST", "/fhir/r4/Appointment/$find", find)
assert status == 200, bundle
valid(bundle, "the $find Bundle")
proposed = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
if len(proposed) < 2:
    fail(f"$find offered {len(proposed)} times; the demo clinic has more")

status, held = call("POST", "/fhir/r4/Appointment/$hold",
                    parameters({"name": "appointment-resource", "resource": proposed[0]},
                               {"name": "patient-reference", "valueReference": {"reference": f"Patient/{PATIENT}"}}))
assert status == 200, held
valid(held, "the $hold Appointment")

book = parameters({"name": "appointment-reference", "valueReference": {"reference": f"Appointment/{held['id']}"}},
                  {"name": "patient-reference", "valueReference": {"reference": f"Patient/{PATIENT}"}})
status, booked = call("POST", "/fhir/r4/Appointment/$book", book, key=str(uuid.uuid4()))
assert status == 200, booked
valid(booked, "the $book Appointment")
if booked["status"] != "booked":
    fail(f"$book answered status {booked['status']}")

again = parameters({"name": "appointment-resource", "resource": proposed[0]},
                   {"name": "patient-reference", "valueReference": {"reference": f"Patient/{PATIENT}"}})
refused(*call("POST", "/fhir/r4/Appointment/$book", again, key=str(uuid.uuid4())), 409, "slot_unavailable", "a second booking of the time")
refused(*call("POST", "/fhir/r4/Appointment/$find", parameters({"name": "colour", "valueString": "blue"})), 400, "validation_failed", "an unknown parameter")
refused(*call("POST", "/fhir/r4/Appointment/$find", find, token=None), 401, "unauthorized", "no token")
refused(*call("GET", "/fhir/r4/OperationDefinition/nothing", token=None), 404, "not_found", "an unknown definition")
refused(*call("POST", "/fhir/r4/Appointment/$find", parameters(
    {"name": "visit-type", "valueCoding": {"system": "INTERNAL", "code": "FLUP"}},
    {"name": "duration", "valueInteger": 45}, {"name": "patient-state", "valueString": "CA"})),
    422, "duration_not_allowed", "a duration the reason does not take")

print(f"FHIR R4: {checked} resources valid (fhir.resources, FHIR 4.0.1)")
