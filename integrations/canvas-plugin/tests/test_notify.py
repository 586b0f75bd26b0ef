"""The handler with the real SDK: events as the platform builds them, effects as it runs them."""

import base64
import hashlib
import hmac
import json
import logging

import pytest
from canvas_sdk.effects import EffectType
from canvas_sdk.events import Event, EventRequest, EventType

from slotgate_notify.handlers.notify import EVENTS, RETRY_ON, AppointmentChanged
from slotgate_notify.signing import key_of, sign

APPOINTMENT = "621a66fc-9d5c-4de0-97fb-935d611ac176"
KEY = b"a key of slotgate's own, 32 bytes"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
SECRETS = {"SLOTGATE_URL": "https://slotgate.example.org/", "SLOTGATE_WEBHOOK_SECRET": SECRET}


def event(kind: int, context: dict | None = None) -> Event:
    return Event(
        EventRequest(
            type=kind,
            target=APPOINTMENT,
            target_type="Appointment",
            context=json.dumps(context or {}),
        )
    )


def request_of(effects: list) -> dict:
    assert len(effects) == 1
    assert effects[0].type == EffectType.HTTP_REQUEST
    return json.loads(effects[0].payload)


def test_it_answers_every_appointment_event():
    assert set(AppointmentChanged.RESPONDS_TO) == {EventType.Name(e) for e in EVENTS}
    names = set(AppointmentChanged.RESPONDS_TO)
    for name in ("CREATED", "UPDATED", "CANCELED", "RESCHEDULED", "NO_SHOWED", "CHECKED_IN", "RESTORED"):
        assert f"APPOINTMENT_{name}" in names


@pytest.mark.parametrize("kind", EVENTS, ids=EventType.Name)
def test_each_event_is_one_signed_request_to_slotgate(kind):
    payload = request_of(AppointmentChanged(event(kind), SECRETS).compute())
    request = payload["data"]
    assert request["url"] == "https://slotgate.example.org/v1/webhooks/canvas"
    assert request["method"] == "POST"
    body = json.loads(request["body"])
    assert body == {"event_type": EventType.Name(kind).lower(), "appointment": {"id": APPOINTMENT}}
    headers = request["headers"]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{request['body']}".encode()
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == "v1," + expected
    assert headers["webhook-id"].startswith("msg_")
    # Sent by the platform, retried while slotgate is down or throttling (not on a refusal).
    assert request["retry_on_status_codes"] == RETRY_ON == [429, 500, 502, 503, 504]
    assert payload["async_props"]["max_retries"] == 5


def test_no_patient_data_leaves_canvas():
    context = {"patient": {"id": "a031d1ba40d74aebb8ed716716da05c2"}, "patient_name": "Jane Doe"}
    request = request_of(AppointmentChanged(event(EventType.APPOINTMENT_CREATED, context), SECRETS).compute())["data"]
    text = json.dumps(request)
    assert "a031d1ba" not in text and "Jane" not in text
    assert set(json.loads(request["body"])) == {"event_type", "appointment"}


def test_two_notifications_are_two_messages():
    first = request_of(AppointmentChanged(event(EventType.APPOINTMENT_UPDATED), SECRETS).compute())
    second = request_of(AppointmentChanged(event(EventType.APPOINTMENT_UPDATED), SECRETS).compute())
    assert first["data"]["headers"]["webhook-id"] != second["data"]["headers"]["webhook-id"]


@pytest.mark.parametrize(
    "secrets",
    [
        {},
        {"SLOTGATE_URL": "https://slotgate.example.org"},
        {"SLOTGATE_WEBHOOK_SECRET": SECRET},
        {"SLOTGATE_URL": "https://slotgate.example.org", "SLOTGATE_WEBHOOK_SECRET": "not-a-whsec-secret"},
    ],
)
def test_without_both_secrets_nothing_is_sent_and_the_log_says_why(secrets, caplog):
    with caplog.at_level(logging.WARNING):
        effects = AppointmentChanged(event(EventType.APPOINTMENT_CREATED), secrets).compute()
    assert effects == []
    assert "SLOTGATE_URL and SLOTGATE_WEBHOOK_SECRET" in caplog.text


def test_signing_matches_the_standard_webhooks_example():
    # https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = '{"test": 2432232314}'
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    assert key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") is None
    assert key_of("whsec_!!!") is None
