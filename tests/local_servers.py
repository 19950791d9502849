"""Real servers on 127.0.0.1 for the alert sinks: an HTTP server (webhooks and the Slack
Web API) and an SMTP server (aiosmtpd). Tests talk to them with the sinks' real clients."""

from __future__ import annotations

import json
import socket
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

SLACK_OK = {"ok": True, "channel": "C1", "ts": "1.1"}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with server.lock:
            server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "raw": raw, "json": body}
            )
            queue = server.replies[self.path]
            status, answer = queue.popleft() if queue else (200, None)
        if answer is None:
            answer = SLACK_OK if self.path.startswith("/api/") else {"received": True}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format, *args):
        pass  # keep pytest's output clean


class HttpServer:
    """What the webhook and the Slack client talk to; records every request and answers
    each path with a programmed sequence of (status, JSON body), then 200."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.requests = []
        self.httpd.replies = defaultdict(deque)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        # A short poll interval keeps shutdown() (each test's teardown) quick.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def program(self, path, *replies):
        """Each reply is a status code or (status, body dict); body None = the default."""
        for reply in replies:
            self.httpd.replies[path].append(reply if isinstance(reply, tuple) else (reply, None))

    @property
    def requests(self):
        return list(self.httpd.requests)

    def to(self, path):
        return [r for r in self.requests if r["path"] == path]


def free_port():
    # Bound and released at once: nothing listens there afterwards.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailHandler:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "content": envelope.content,
                "login": session.login_data.decode() if session.login_data else None,
            }
        )
        return "250 OK"


class SmtpServer:
    """An SMTP server on 127.0.0.1; with ``auth=(user, password)`` it offers AUTH without
    TLS and accepts only that login."""

    def __init__(self, auth=None, exclude=()):
        self.handler = MailHandler()
        self.logins = []
        kwargs = {}
        if auth:
            kwargs = {
                "authenticator": self._authenticator(*auth),
                "auth_require_tls": False,
                "auth_exclude_mechanism": list(exclude),
            }
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        self.port = self.controller.port

    def _authenticator(self, user, password):
        def authenticate(server, session, envelope, mechanism, auth_data):
            assert isinstance(auth_data, LoginPassword)
            login = (auth_data.login.decode(), auth_data.password.decode())
            self.logins.append((mechanism, *login))
            ok = login == (user, password)
            # handled=False: aiosmtpd then answers 535 itself (the default, True, means
            # the authenticator already replied, and the client would wait for nothing).
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        return authenticate

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    @property
    def messages(self):
        return self.handler.messages
