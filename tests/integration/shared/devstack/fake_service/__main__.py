"""Run the stand-in service: `python -m tests.integration.shared.devstack.fake_service`."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

SETTINGS = (
    "SOLIDARITY_DATABASE_URL",
    "SOLIDARITY_KAFKA_BOOTSTRAP_SERVERS",
    "SOLIDARITY_KAFKA_ENABLE_IDEMPOTENCE",
    "SOLIDARITY_HTTP_HOST",
    "SOLIDARITY_HTTP_PORT",
    "SOLIDARITY_SMTP_HOST",
    "SOLIDARITY_SMTP_PORT",
    "SOLIDARITY_LOG_FORMAT",
)
EXIT_AT_START = "FAKE_SERVICE_EXIT_CODE"  # the tests set it to make the service fail at start


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in ("/health", "/ready"):
            self.send_error(404)
            return
        body = json.dumps({key: os.environ.get(key) for key in SETTINGS}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    if os.environ.get(EXIT_AT_START):
        sys.exit(int(os.environ[EXIT_AT_START]))
    server = ThreadingHTTPServer(
        (os.environ["SOLIDARITY_HTTP_HOST"], int(os.environ["SOLIDARITY_HTTP_PORT"])), _Health
    )

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
