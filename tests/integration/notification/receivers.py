"""Local stand-ins for the receivers the notification channels talk to, on 127.0.0.1.

``HttpReceiver``: a threaded HTTP server in a real OS thread that records every request
and answers each path as scripted (status, body, delay) — a webhook endpoint, a Slack or
DingTalk robot, one that hangs, one that answers garbage.

``SmtpReceiver``: an aiosmtpd server in a subprocess (a fresh interpreter, away from the
test process's eventlet patching) that writes every accepted message to a folder as JSON,
refuses recipients whose local part starts with "refused" (550) and defers those starting
with "busy" (451). Run as ``python receivers.py smtp PORT FOLDER``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: Any  # an http.client.HTTPMessage: case-insensitive names
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0  # seconds before answering (a hanging receiver)
    trickle: float = 0.0  # > 0: send the headers one byte every `trickle` seconds, for ever


@dataclass
class HttpReceiver:
    port: int
    requests: list[Recorded] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, status: int = 200, body: bytes | str = b"", *, delay: float = 0.0,
               content_type: str = "application/json", trickle: float = 0.0) -> str:
        """Script the answer for ``path``; returns the URL to send to."""
        self.answers[path] = Answer(status, body.encode() if isinstance(body, str) else body, content_type, delay,
                                    trickle)
        return self.url(path)

    def start(self):
        from eventlet import patcher
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self._stopped = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(Recorded("POST", self.path, self.headers, body))
                answer = receiver.answers.get(self.path.split("?", 1)[0], Answer())
                if answer.trickle:
                    return self.trickle(answer.trickle)
                until = time.monotonic() + answer.delay
                while time.monotonic() < until and not receiver._stopped:
                    time.sleep(0.02)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer.body)

            def trickle(self, interval):
                # alive, but never done: no socket read on the other side ever times out
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    until = time.monotonic() + 5
                    while time.monotonic() < until and not receiver._stopped:
                        self.wfile.write(b"z")
                        time.sleep(interval)
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, format, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.timeout = 0.05

        def serve():
            # not serve_forever(): its shutdown() handshake does not cross eventlet hubs
            while not self._stopped:
                self._server.handle_request()

        # a real OS thread (with its own eventlet hub, where the per-request green threads
        # run): the server keeps answering whatever the test's thread is blocked on
        self._thread = patcher.original("threading").Thread(target=serve, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopped = True
        self._thread.join(5)
        self._server.server_close()

    def last(self) -> Recorded:
        assert self.requests, "the receiver got no request"
        return self.requests[-1]


class SmtpReceiver:
    def __init__(self, port: int, folder: Path):
        self.port = port
        self.folder = Path(folder)

    def start(self):
        from tests.waiting import wait_until
        import socket

        self.folder.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, __file__, "smtp", str(self.port), str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

        def listening():
            if self._process.poll() is not None:
                raise AssertionError(f"SMTP receiver died: {self._process.stderr.read().decode()}")
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, timeout=10, interval=0.05, message="the SMTP receiver to listen")
        return self

    def stop(self):
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self._process.kill()
            self._process.wait(5)
        self._process.stderr.close()

    def messages(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]

    def clear(self):
        for p in self.folder.glob("*.json"):
            p.unlink()


def _serve_smtp(port: int, folder: Path) -> None:  # runs in the subprocess
    from aiosmtpd.controller import Controller

    counter = iter(range(1, 1 << 30))

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            local = address.split("@", 1)[0]
            if local.startswith("refused"):
                return "550 5.1.1 no such user here"
            if local.startswith("busy"):
                return "451 4.3.0 mailbox busy, try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "content": envelope.original_content.decode("utf-8", "replace"),
            }
            name = f"{time.time_ns()}-{next(counter):06d}"
            tmp = folder / f"{name}.tmp"
            tmp.write_text(json.dumps(record))
            tmp.rename(folder / f"{name}.json")  # atomic: the test never reads half a file
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["smtp"]:
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        _serve_smtp(int(sys.argv[2]), Path(sys.argv[3]))
