"""A tiny callback receiver that verifies Standard Webhooks signatures (used by ``make demo``).

Run: ``RECEIVER_SECRET=whsec_... RECEIVER_PORT=9000 python examples/receiver.py``. Every verified event is
printed and, with ``RECEIVER_OUTPUT=path``, the last one is written there as JSON (``{"headers", "event"}``).
An event that does not verify gets 401; a webhook-id seen before gets 200 without being processed again.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ["RECEIVER_SECRET"]  # whsec_..., the secret the service configured for your API client
PORT = int(os.environ.get("RECEIVER_PORT", "9000"))
OUTPUT = os.environ.get("RECEIVER_OUTPUT")

webhook = Webhook(SECRET)
seen: set[str] = set()  # webhook-ids already processed (use a store with expiry in production)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the raw bytes, as signed
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            event = webhook.verify(body, headers)  # checks signature(s) and the timestamp's age
        except WebhookVerificationError as exc:
            self.answer(401, f"signature not verified: {exc}")
            return
        webhook_id = headers["webhook-id"]
        if webhook_id not in seen:  # a retry of an event already handled carries the same webhook-id
            seen.add(webhook_id)
            self.handle_event(event, headers)
        self.answer(200, "ok")

    def handle_event(self, event: dict, headers: dict[str, str]) -> None:
        data = event["data"]
        print(f"{event['type']} job {data['id']} ({headers['webhook-id']})", flush=True)
        if OUTPUT:
            kept = {k: headers[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
            with open(OUTPUT + ".tmp", "w") as out:
                json.dump({"headers": kept, "event": event}, out, ensure_ascii=False)
            os.replace(OUTPUT + ".tmp", OUTPUT)

    def answer(self, status: int, text: str) -> None:
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("receiver: " + format % args + "\n")


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
