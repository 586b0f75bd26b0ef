"""End to end: what the plugin produces, sent as the Canvas platform would send it, to a running
slotgate; the appointment then reaches slotgate's webhook sink.

A Canvas-shaped sandbox (`slotgate sandbox`), slotgate configured against it with a webhook sink
(a receiver started here) and a reconcile interval of an hour, so that only the notification can
bring the change across quickly. After slotgate's start-up sweep, an appointment is booked
straight into the sandbox (as the front desk would in Canvas), the plugin's handler computes its
effect for APPOINTMENT_CREATED, and the HTTP request in that effect is sent: 202, and the sink
hears of the appointment within seconds. The same request signed with another secret, or signed
more than five minutes ago, is refused (401).

Usage: python e2e.py path/to/slotgate   (from integrations/canvas-plugin, in the SDK's venv)
"""

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from canvas_sdk.events import Event, EventRequest, EventType

from slotgate_notify.handlers.notify import AppointmentChanged
from slotgate_notify.signing import key_of, sign

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SECRET = "whsec_" + base64.b64encode(b"the clinic's plugin secret, 32 b").decode()
HOOK_SECRET = "whsec_" + base64.b64encode(b"the ops receiver's secret, 32 by").decode()
OKAFOR, ELIJAH = "c48de0f40beb4fee86f872da7a840cf9", "626385e7825a47bc947517782cc056ef"
OAKLAND = "388f8191-af1d-433a-93d7-6db62585ae1e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver(BaseHTTPRequestHandler):
    """The clinic's webhook receiver: keeps every body."""

    bodies: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", "0"))
        Receiver.bodies.append(self.rfile.read(length).decode())
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(what: str, check, seconds: float = 30.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    sys.exit(f"e2e: never happened: {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError):
        return False


def send(request: dict) -> int:
    """Sends an HttpRequestEffect's request as the platform does; its status."""
    req = urllib.request.Request(
        request["url"],
        data=request["body"].encode(),
        headers=request["headers"],
        method=request["method"],
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def sandbox_token(base: str) -> str:
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": "slotgate-sandbox", "client_secret": "sandbox-secret"}
    ).encode()
    with urllib.request.urlopen(f"{base}/auth/token/", data=form, timeout=5) as r:
        return json.load(r)["access_token"]


def book_at_the_front_desk(base: str) -> str:
    """An appointment made in Canvas itself, not through slotgate: its id."""
    start = time.strftime("%Y-%m-%dT18:00:00Z", time.gmtime(time.time() + 12 * 86400))
    end = start.replace("18:00:00", "18:30:00")
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "appointmentType": {"coding": [{"system": "http://snomed.info/sct", "code": "448337001"}]},
        "reasonCode": [{"coding": [{"system": "INTERNAL", "code": "FLUP"}]}],
        "supportingInformation": [{"reference": f"Location/{OAKLAND}"}],
        "start": start,
        "end": end,
        "participant": [
            {"actor": {"reference": f"Patient/{ELIJAH}"}, "status": "accepted"},
            {"actor": {"reference": f"Practitioner/{OKAFOR}"}, "status": "accepted"},
        ],
    }
    req = urllib.request.Request(
        f"{base}/Appointment",
        data=json.dumps(appointment).encode(),
        headers={"Authorization": f"Bearer {sandbox_token(base)}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        location = r.headers["Location"]
    return location.split("/Appointment/")[1].split("/")[0]


def plugin_request(slotgate: str, appointment: str, secret: str = SECRET) -> dict:
    event = Event(EventRequest(type=EventType.APPOINTMENT_CREATED, target=appointment, target_type="Appointment"))
    secrets = {"SLOTGATE_URL": slotgate, "SLOTGATE_WEBHOOK_SECRET": secret}
    effects = AppointmentChanged(event, secrets).compute()
    assert len(effects) == 1, effects
    return json.loads(effects[0].payload)["data"]


def main(binary: str) -> None:
    sandbox_port, slotgate_port = free_port(), free_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    slotgate_url = f"http://127.0.0.1:{slotgate_port}"
    with open(os.path.join(ROOT, "deploy", "demo.toml")) as rules:
        config = rules.read()
    config += f"""
[server]
listen = "127.0.0.1:{slotgate_port}"
[canvas]
fhir_url = "{sandbox_url}"
token_url = "{sandbox_url}/auth/token/"
client_id = "slotgate-sandbox"
client_secret = "sandbox-secret"
[auth]
issuer = "https://id.example.org"
audience = "slotgate"
hs256_secret = "a development secret for the plugin's e2e run"
[telemetry]
log_filter = "warn"
[sync]
canvas_webhook_secret = "{SECRET}"
reconcile_interval_seconds = 3600
[[sync.sinks]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:{receiver.server_address[1]}/hooks"
secret = "{HOOK_SECRET}"
phi = "neutral"
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTGATE_")}
    children = []
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
    try:
        children.append(
            subprocess.Popen(
                [binary, "sandbox", "--listen", f"127.0.0.1:{sandbox_port}"],
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
        wait_for("the sandbox answers", lambda: answers(f"{sandbox_url}/_sandbox/faults"))
        children.append(
            subprocess.Popen([binary], env={**env, "SLOTGATE_CONFIG": f.name}, stdout=subprocess.DEVNULL)
        )
        wait_for("slotgate is ready", lambda: answers(f"{slotgate_url}/readyz"))
        # The start-up sweep delivers what Canvas holds; wait until it is quiet.
        seen = -1
        while seen != len(Receiver.bodies):
            seen = len(Receiver.bodies)
            time.sleep(2)
        appointment = book_at_the_front_desk(sandbox_url)
        request = plugin_request(slotgate_url, appointment)
        status = send(request)
        assert status == 202, f"the plugin's request answered {status}"
        wait_for(
            "the sink hears of the appointment",
            lambda: any(appointment in body for body in Receiver.bodies),
            seconds=15,
        )
        other = plugin_request(slotgate_url, appointment, secret="whsec_" + base64.b64encode(b"x" * 32).decode())
        assert send(other) == 401, "a request signed with another secret is refused"
        stale = dict(request, headers=dict(request["headers"]))
        then = int(time.time()) - 6 * 60
        stale["headers"]["webhook-timestamp"] = str(then)
        stale["headers"]["webhook-signature"] = sign(key_of(SECRET), request["headers"]["webhook-id"], then, request["body"])
        assert send(stale) == 401, "a retry signed more than five minutes ago is not taken as fresh"
        print(f"e2e: the plugin's notification of {appointment} reached the sink; forged and stale ones were refused")
    finally:
        for child in children:
            child.terminate()
            child.wait(timeout=10)
        os.unlink(f.name)
        receiver.shutdown()


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]))
