"""One handler for every appointment event: a notification to slotgate naming the appointment.

The body carries the appointment's id and the event's name, nothing about the patient: slotgate
reads the appointment's current state from Canvas itself. The request is signed per Standard
Webhooks with ``SLOTGATE_WEBHOOK_SECRET`` and sent by the platform, asynchronously, retried when
slotgate answers 429 or 5xx. slotgate refuses signatures older than five minutes, so a retry that
comes later than that is refused (401, not retried) rather than taken as fresh: slotgate's
reconciler then finds the change on its next sweep.
"""

import hashlib
import json
import time

from canvas_sdk.effects import Effect
from canvas_sdk.effects.http_request import HttpRequestEffect
from canvas_sdk.events import EventType
from canvas_sdk.handlers import BaseHandler
from logger import log

from slotgate_notify.signing import key_of, sign

EVENTS = (
    EventType.APPOINTMENT_CREATED,
    EventType.APPOINTMENT_UPDATED,
    EventType.APPOINTMENT_CANCELED,
    EventType.APPOINTMENT_RESCHEDULED,
    EventType.APPOINTMENT_NO_SHOWED,
    EventType.APPOINTMENT_CHECKED_IN,
    EventType.APPOINTMENT_RESTORED,
)

# The statuses on which the platform tries again: slotgate unavailable or throttling.
RETRY_ON = [429, 500, 502, 503, 504]
MAX_RETRIES = 5
PATH = "/v1/webhooks/canvas"


def message_id(event_name: str, appointment: str, timestamp: int) -> str:
    """A new id per notification (a platform retry resends the same headers, so the same id)."""
    seed = f"{event_name}:{appointment}:{timestamp}:{time.perf_counter_ns()}".encode()
    return "msg_" + hashlib.sha256(seed).hexdigest()[:32]


class AppointmentChanged(BaseHandler):
    """Notifies slotgate of every appointment change."""

    RESPONDS_TO = [EventType.Name(e) for e in EVENTS]

    def compute(self) -> list[Effect]:
        url = (self.secrets.get("SLOTGATE_URL") or "").strip().rstrip("/")
        secret = (self.secrets.get("SLOTGATE_WEBHOOK_SECRET") or "").strip()
        key = key_of(secret)
        if not url or key is None:
            log.warning(
                "slotgate_notify: set the SLOTGATE_URL and SLOTGATE_WEBHOOK_SECRET (whsec_...) "
                "secrets of this plugin; no notification is sent until both are set"
            )
            return []
        event_name = EventType.Name(self.event.type).lower()
        appointment = str(self.event.target.id)
        body = json.dumps(
            {"event_type": event_name, "appointment": {"id": appointment}},
            separators=(",", ":"),
        )
        timestamp = int(time.time())
        msg = message_id(event_name, appointment, timestamp)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, msg, timestamp, body),
        }
        request = HttpRequestEffect(
            url=url + PATH,
            method="POST",
            headers=headers,
            body=body,
            retry_on_status_codes=RETRY_ON,
        )
        return [request.apply().set_async(delay_seconds=0, max_retries=MAX_RETRIES)]
