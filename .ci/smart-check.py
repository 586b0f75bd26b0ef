#!/usr/bin/env python3
"""Checks a running slotgate's SMART Scheduling Links publication with a FHIR library nobody
here wrote: fetches the manifest at BASE/smart/$bulk-publish and every file it lists, checks the
manifest's fields against the SMART Scheduling Links specification, and validates every resource
as FHIR R4 (4.0.1) with fhir.resources 6.4.0. Starts nothing itself.

    .venv-fhir/bin/python .ci/smart-check.py http://127.0.0.1:8080

Exits non-zero on any failure, listing each.
"""

import json
import re
import sys
import urllib.error
import urllib.request
from urllib.parse import urlparse

import fhir.resources
from fhir.resources import construct_fhir_element

# SMART Scheduling Links, "Timestamps": to the second at least, with an offset (or Z).
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# FHIR's id, which the specification repeats for Location, Schedule and Slot.
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MANIFEST_FIELDS = {"transactionTime", "request", "output", "error"}
TYPES = ("Location", "Schedule", "Slot")
SLOT_STATUSES = {"free", "busy", "busy-tentative"}
DEEP_LINK = "http://fhir-registry.smarthealthit.org/StructureDefinition/booking-deep-link"

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as response:
        # The headers as a case-insensitive mapping.
        return response.status, response.headers, response.read()


def absolute(url):
    parsed = urlparse(url or "")
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def check_manifest(url, manifest):
    if set(manifest) != MANIFEST_FIELDS:
        fail("manifest", f"fields {sorted(manifest)}, expected {sorted(MANIFEST_FIELDS)}")
    if not TIMESTAMP.match(str(manifest.get("transactionTime", ""))):
        fail("manifest", f"transactionTime {manifest.get('transactionTime')!r} is not a timestamp")
    if manifest.get("request") != url:
        fail("manifest", f"request {manifest.get('request')!r} is not this manifest's URL {url}")
    if not isinstance(manifest.get("error"), list):
        fail("manifest", "error is not an array")
    outputs = manifest.get("output")
    if not isinstance(outputs, list) or not outputs:
        fail("manifest", "output is not a non-empty array")
        return []
    for i, o in enumerate(outputs):
        where = f"manifest output[{i}]"
        if set(o) != {"type", "url", "extension"}:
            fail(where, f"fields {sorted(o)}, expected type, url, extension")
        if o.get("type") not in TYPES:
            fail(where, f"type {o.get('type')!r} is not one of {TYPES}")
        if not absolute(o.get("url")):
            fail(where, f"url {o.get('url')!r} is not absolute")
        states = (o.get("extension") or {}).get("state")
        if not isinstance(states, list) or not all(
            isinstance(s, str) and re.fullmatch(r"[A-Z]{2}", s) for s in states
        ):
            fail(where, f"extension.state {states!r} is not a list of state abbreviations")
    missing = set(TYPES) - {o.get("type") for o in outputs}
    if missing:
        fail("manifest", f"no output of type {sorted(missing)}")
    return outputs


def check_file(output):
    url, kind = output["url"], output["type"]
    status, headers, body = get(url, {"Accept": "application/fhir+ndjson"})
    content_type = headers.get("Content-Type", "")
    if status != 200 or not content_type.startswith("application/fhir+ndjson"):
        fail(url, f"answered {status} {content_type!r}")
    etag = headers.get("ETag")
    if not etag:
        fail(url, "no ETag")
    else:
        try:
            get(url, {"If-None-Match": etag})
            fail(url, "If-None-Match with its own ETag was not a 304")
        except urllib.error.HTTPError as e:
            if e.code != 304:
                fail(url, f"If-None-Match answered {e.code}, not 304")
    resources = []
    for n, line in enumerate(body.decode("utf-8").splitlines(), start=1):
        where = f"{url} line {n}"
        if not line.strip():
            fail(where, "empty line")
            continue
        try:
            resource = json.loads(line)
        except ValueError as e:
            fail(where, f"not JSON: {e}")
            continue
        if resource.get("resourceType") != kind:
            fail(where, f"resourceType {resource.get('resourceType')!r} in a {kind} file")
            continue
        try:
            construct_fhir_element(kind, resource)
        except Exception as e:  # the library's own validation errors, whatever their class
            fail(where, f"not a valid FHIR R4 {kind}: {e}")
        if not FHIR_ID.match(str(resource.get("id", ""))):
            fail(where, f"id {resource.get('id')!r} is not a FHIR id")
        resources.append(resource)
    return resources


def check_slot(where, slot, schedules):
    if slot.get("status") not in SLOT_STATUSES:
        fail(where, f"status {slot.get('status')!r} is not one of {sorted(SLOT_STATUSES)}")
    for field in ("start", "end"):
        if not TIMESTAMP.match(str(slot.get(field, ""))):
            fail(where, f"{field} {slot.get(field)!r} is not a timestamp with an offset")
    reference = (slot.get("schedule") or {}).get("reference", "")
    if reference.removeprefix("Schedule/") not in schedules:
        fail(where, f"schedule {reference!r} is not in the Schedule file")
    links = [e for e in slot.get("extension", []) if e.get("url") == DEEP_LINK]
    if len(links) != 1 or not absolute(links[0].get("valueUrl")):
        fail(where, "no booking-deep-link extension with an absolute valueUrl")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    base = sys.argv[1].rstrip("/")
    url = f"{base}/smart/$bulk-publish"
    print(f"SMART Scheduling Links at {url}, FHIR {fhir.resources.__fhir_version__} "
          f"(fhir.resources {fhir.resources.__version__})")
    manifests = []
    for accept in (None, "application/json"):
        status, headers, body = get(url, {"Accept": accept} if accept else {})
        if status != 200 or not headers.get("Content-Type", "").startswith("application/json"):
            fail("manifest", f"Accept {accept!r} answered {status} {headers.get('Content-Type')!r}")
        manifests.append(json.loads(body))
    if manifests[0]["output"] != manifests[1]["output"]:
        fail("manifest", "a different output with Accept: application/json")
    outputs = check_manifest(url, manifests[0])
    found = {kind: [] for kind in TYPES}
    for output in outputs:
        if output.get("type") in TYPES and absolute(output.get("url")):
            found[output["type"]].extend(check_file(output))
    locations = {r.get("id") for r in found["Location"]}
    schedules = {r.get("id") for r in found["Schedule"]}
    for s in found["Schedule"]:
        for actor in s.get("actor", []):
            reference = actor.get("reference", "")
            if reference.startswith("Location/") and reference[9:] not in locations:
                fail(f"Schedule {s.get('id')}", f"actor {reference} is not in the Location file")
    for slot in found["Slot"]:
        check_slot(f"Slot {slot.get('id')}", slot, schedules)
    counts = ", ".join(f"{len(found[k])} {k}" for k in TYPES)
    statuses = {}
    for slot in found["Slot"]:
        statuses[slot.get("status")] = statuses.get(slot.get("status"), 0) + 1
    print(f"checked {counts}; slot statuses {statuses}")
    if not found["Slot"]:
        fail("publication", "no Slot at all: nothing was checked")
    for f in failures[:50]:
        print(f"FAIL {f}")
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("SMART Scheduling Links publication: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
