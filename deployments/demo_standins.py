"""Loopback stand-ins for what the demo cannot run: the example platform's API, Slack, PagerDuty and SMTP.

They print what they receive, so the person running ``make demo`` sees the alerts envsteward sends. They
are demo scaffolding, not part of envsteward; the test suite has its own, stricter stand-ins.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

Printer = Callable[[str], None]


class _Handler(BaseHTTPRequestHandler):
    printer: Printer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log."""

    def _reply(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/healthz"):
            self._reply(200, {"status": "ok", "service": "shopfront-api (demo stand-in)"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            payload = {}
        if self.path.endswith("/chat.postMessage"):
            self.printer(f"[slack {payload.get('channel')}] {payload.get('text', '')}\n")
            self._reply(200, {"ok": True, "channel": payload.get("channel"), "ts": "1.0"})
        elif self.path.endswith("/auth.test"):
            self._reply(200, {"ok": True, "user": "envsteward-demo"})
        elif self.path.endswith("/v2/enqueue"):
            summary = (payload.get("payload") or {}).get("summary", "")
            self.printer(f"[pagerduty {payload.get('event_action')}] {summary}\n")
            self._reply(202, {"status": "success", "dedup_key": payload.get("dedup_key") or "demo"})
        else:
            self._reply(404, {"ok": False, "error": "unknown_method"})


class DemoHTTPStandins:
    """One threaded HTTP server: ``/healthz`` (platform API), ``/slack/api/*``, ``/pagerduty/v2/enqueue``."""

    def __init__(self, port: int, printer: Printer) -> None:
        handler = type("DemoHandler", (_Handler,), {"printer": staticmethod(printer)})
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.port = port
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-standins", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _PrintingSMTPHandler:
    def __init__(self, printer: Printer) -> None:
        self.printer = printer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        message = message_from_bytes(envelope.content, policy=default)
        self.printer(f"[email to {', '.join(envelope.rcpt_tos)}] {message['subject']}")
        return "250 Message accepted for delivery"


def start_smtp(port: int, printer: Printer) -> Controller:
    controller = Controller(_PrintingSMTPHandler(printer), hostname="127.0.0.1", port=port)
    controller.start()
    return controller
