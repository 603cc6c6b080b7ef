"""The endpoint the bank's complaint system pushes tickets to (stdlib ``http.server``).

``POST /tickets`` with ``Authorization: Bearer <token>`` and a JSON body: one
ticket object, an array of them, or ``{"tickets": [...]}``. Field names follow
``tickets.columns`` (the same mapping as file imports). Every record is
validated and PII-masked like a file row; then:

* all valid → upserted by ``ticket_id`` (idempotent: pushing the same ticket
  again with a new status updates it) → ``200 {"imported": n, "rejected": []}``;
  a status change of a ticket of a problem record is written to that
  problem's audit history (:class:`alerts.tickets.problems.ProblemTicketSync`);
* any rejected → ``422`` with each rejected record's number and reason and
  *nothing written*, unless the request has ``?partial=1``: then the valid
  ones are written and the answer is ``200`` listing the rejected ones.

Other answers: ``401`` wrong or missing token (compared in constant time;
the token is never logged), ``400`` not JSON, ``413`` body larger than
``tickets.push_max_bytes``, ``503`` the state store is down (retry later).
``GET /healthz`` answers ``ok`` without a token.

Bind ``tickets.push_host`` (127.0.0.1 by default) behind the bank's reverse
proxy with TLS; :meth:`TicketPushServer.stop` shuts it down.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerts.tickets.importer import record_problem_changes, tickets_from_records
from alerts.tickets.problems import ProblemTicketSync
from core.errors import StoreError, StoreUnavailable
from core.ports import StateStore
from core.settings import TicketsConfig

logger = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


class TicketPushServer:
    """Accepts pushed tickets into ``store``. ``port=0`` picks a free port (see :attr:`port`).

    Raises ``ValueError`` for a token shorter than ``MIN_TOKEN_LENGTH``: a
    guessable token on an endpoint that writes would be worse than none.
    """

    def __init__(
        self,
        store: StateStore,
        config: TicketsConfig,
        *,
        token: str,
        timezone: str,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the push token must have at least {MIN_TOKEN_LENGTH} characters")
        self.store = store
        self.config = config
        self.timezone = timezone
        self._token = token.encode("utf-8")
        self._lock = threading.Lock()  # one writer at a time: batches stay whole
        address = (host or config.push_host, config.push_port if port is None else port)
        self._httpd = ThreadingHTTPServer(address, _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            # A short poll interval: stop() returns within 0.1 s.
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="ticket-push",
            daemon=True,
        )
        self._thread.start()
        logger.info("ticket push endpoint listening on %s/tickets", self.url)

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        logger.info("ticket push endpoint listening on %s/tickets", self.url)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving (safe to call twice)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode("utf-8"), self._token)

    def accept(self, body: Any, *, partial: bool) -> tuple[HTTPStatus, dict[str, Any]]:
        """Validate and store one pushed body; the status and JSON answer (see the module doc)."""
        if isinstance(body, dict) and isinstance(body.get("tickets"), list):
            records: list[Any] = body["tickets"]
        elif isinstance(body, list):
            records = body
        else:
            records = [body]
        tickets, rejected = tickets_from_records(records, self.config, timezone=self.timezone)
        answer: dict[str, Any] = {
            "received": len(records),
            "imported": 0,
            "rejected": [
                {"record": r.row, "ticket_id": r.ticket_id, "reason": r.reason, "detail": r.detail}
                for r in rejected
            ],
        }
        if rejected and not partial:
            answer["message"] = "nothing imported: fix the rejected records or use ?partial=1"
            return HTTPStatus.UNPROCESSABLE_ENTITY, answer
        if tickets:
            with self._lock:
                sync = ProblemTicketSync.before(
                    self.store, [t.ticket_id for t in tickets], self.config.closed_statuses
                )
                answer["imported"] = self.store.upsert_tickets(tickets)
                record_problem_changes(sync, actor="complaint-system push")
        logger.info("pushed tickets: %d imported, %d rejected", answer["imported"], len(rejected))
        return HTTPStatus.OK, answer


def _handler_for(server: TicketPushServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "yuqing-tickets"

        def log_message(self, format: str, *args: object) -> None:
            # The default logs to stderr; ours goes through logging (path only, no headers).
            logger.info("%s %s", self.address_string(), format % args)

        def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/healthz":
                body = b"ok"
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/tickets":
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            if not server.authorized(self.headers.get("Authorization")):
                self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "0")
            except ValueError:
                length = -1
            if length < 0 or length > server.config.push_max_bytes:
                self.close_connection = True  # the unread body must not be parsed as a request
                self._json(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    {"error": f"body must be 0..{server.config.push_max_bytes} bytes"},
                )
                return
            try:
                body = json.loads(self.rfile.read(length).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"not UTF-8 JSON: {exc}"})
                return
            partial = parse_qs(url.query).get("partial", ["0"])[0] in ("1", "true", "yes")
            try:
                status, answer = server.accept(body, partial=partial)
            except StoreUnavailable as exc:
                logger.error("ticket push: state store unavailable: %s", exc)
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "store unavailable, retry"})
                return
            except StoreError as exc:
                logger.error("ticket push: store error: %s", exc)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "store error"})
                return
            self._json(status, answer)

    return Handler
