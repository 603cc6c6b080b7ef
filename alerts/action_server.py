"""The HTTP endpoint behind the signed one-click links in messages (stdlib ``http.server``).

``GET /action?t=<token>`` verifies the token (signature, expiry) and shows a
confirmation page with one button; the button ``POST``\\ s the same token to
``/action``, which verifies it again, performs the action (acknowledge,
escalate, resolve), writes the audit log (who = the token's ``who``, when =
the state store's clock) and shows what happened. ``GET /healthz`` answers
``ok``.

Why a button and not the GET itself: mail gateways and chat apps fetch links
to scan or preview them. If a GET acknowledged, the scanner would acknowledge
every incident and stop its escalation — the one failure this feature must
not have. One extra click is the price.

A tampered or malformed token → 403 "链接无效"; an expired one → 403
"链接已过期" (never a hint which part was wrong beyond that); an unknown
incident → 404; the state database down → 503 (try again). Tokens are never
logged: the access log shows the path only.

The server binds ``ack_links.host`` (127.0.0.1 by default: put the bank's
reverse proxy with TLS in front of it) on ``ack_links.port`` in a daemon
thread; :meth:`ActionServer.stop` shuts it down.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable
from datetime import datetime, tzinfo
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from alerts.actions import act
from alerts.escalation import EscalationPolicy, EscalationStore
from alerts.links import ActionClaims, LinkError, LinkSigner
from alerts.messages import ACTION_ZH
from core.errors import QueryError, StoreUnavailable
from core.models import Incident, utcnow
from core.ports import PostStore

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 8192


class ActionServer:
    """Serves the action links; perform actions against ``store`` through ``policy``.

    ``on_change`` is called (in the request thread) after an action changed
    something, e.g. to deliver the messages it queued at once. ``port=0``
    picks a free port (see :attr:`port`).
    """

    def __init__(
        self,
        store: EscalationStore,
        signer: LinkSigner,
        policy: EscalationPolicy,
        *,
        host: str = "127.0.0.1",
        port: int = 8788,
        tz: tzinfo | None = None,
        posts: PostStore | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.policy = policy
        self.tz = tz or policy.tz
        self.posts = posts
        self.clock = clock
        self.on_change = on_change
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Where this server listens, e.g. ``http://127.0.0.1:8788``."""
        host = self._httpd.server_address[0]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread; returns at once."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="yuqing-action-links", daemon=True
        )
        self._thread.start()
        logger.info("action-link endpoint listening on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    # -- what the handler calls ---------------------------------------------------------

    def verify(self, token: str) -> tuple[ActionClaims, Incident]:
        """Raises ``LinkError``, ``QueryError`` (unknown incident) or ``StoreUnavailable``."""
        claims = self.signer.verify(token, now=self.clock())
        incident = self.store.get_incident(claims.incident_id)
        if incident is None:
            raise QueryError(f"unknown incident {claims.incident_id}")
        return claims, incident

    def perform(self, claims: ActionClaims, incident: Incident) -> str:
        """Do what the link says; returns the Chinese sentence for the result page."""
        assert incident.id is not None
        note = f"一键链接（有效期至 {claims.expires_at.astimezone(self.tz):%Y-%m-%d %H:%M}）"
        result = act(
            self.store,
            self.policy,
            incident.id,
            claims.action,
            user=claims.who,
            now=self.clock(),
            note=note,
            posts=self.posts,
        ).message
        logger.warning(
            "incident #%s: %s by %s via signed link",
            incident.id,
            claims.action,
            claims.who,
            extra={"incident_id": incident.id, "action": claims.action, "actor": claims.who},
        )
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                logger.exception("after-action delivery failed; the outbox job retries")
        return result


def _page(title: str, body: str, *, ok: bool) -> bytes:
    colour = "#1a7f37" if ok else "#d93025"
    return (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:36em;margin:3em auto'>"
        f"<h2 style='color:{colour}'>{html.escape(title)}</h2>{body}</body></html>"
    ).encode()


def _handler_for(server: ActionServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "yuqing-actions"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            # The default logs the request line, query string (= the token) included.
            logger.info("%s %s", self.command, urlsplit(self.path).path)

        def _send(self, status: HTTPStatus, page: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")  # keep the token out of referers
            self.send_header("X-Frame-Options", "DENY")
            self.end_headers()
            self.wfile.write(page)

        def _checked(self, token: str) -> tuple[ActionClaims, Incident] | None:
            try:
                return server.verify(token)
            except LinkError as exc:
                logger.warning("refused action link: %s", exc.reason)
                title = "链接已过期" if exc.reason == "expired" else "链接无效"
                hint = (
                    "请在事件室中操作，或等待新的通知。"
                    if exc.reason == "expired"
                    else "链接不完整或已被修改，未执行任何操作。"
                )
                self._send(HTTPStatus.FORBIDDEN, _page(title, f"<p>{hint}</p>", ok=False))
            except QueryError:
                self._send(HTTPStatus.NOT_FOUND, _page("事件不存在", "", ok=False))
            except StoreUnavailable:
                logger.exception("action link: state database unavailable")
                self._send(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    _page("暂时无法处理", "<p>状态数据库不可用，请稍后重试。</p>", ok=False),
                )
            return None

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self._send(HTTPStatus.OK, b"ok")
                return
            if url.path != "/action":
                self._send(HTTPStatus.NOT_FOUND, _page("未找到", "", ok=False))
                return
            token = parse_qs(url.query).get("t", [""])[0]
            checked = self._checked(token)
            if checked is None:
                return
            claims, incident = checked
            label = ACTION_ZH[claims.action]
            e = html.escape
            body = (
                f"<p>事件 #{incident.id}：{e(incident.title)}</p>"
                f"<p>等级：{incident.grade.value}级（{incident.grade.label_zh}），"
                f"状态：{e(incident.status.value)}</p>"
                f"<p>操作人：{e(claims.who)}</p>"
                "<form method='post' action='/action'>"
                f"<input type='hidden' name='t' value='{e(token, quote=True)}'>"
                f"<button type='submit' style='font-size:1.2em'>{e(label)}</button></form>"
            )
            self._send(HTTPStatus.OK, _page(f"请确认：{label}", body, ok=True))

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/action":
                self._send(HTTPStatus.NOT_FOUND, _page("未找到", "", ok=False))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FORM_BYTES:
                self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _page("请求过大", "", ok=False))
                return
            form = parse_qs(self.rfile.read(length).decode("utf-8", errors="replace"))
            checked = self._checked(form.get("t", [""])[0])
            if checked is None:
                return
            claims, incident = checked
            try:
                result = server.perform(claims, incident)
            except StoreUnavailable:
                logger.exception("action link: state database unavailable")
                self._send(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    _page("暂时无法处理", "<p>状态数据库不可用，请稍后重试。</p>", ok=False),
                )
                return
            when = server.clock().astimezone(server.tz)
            body = (
                f"<p>事件 #{incident.id}：{html.escape(incident.title)}</p>"
                f"<p>{html.escape(result)}</p>"
                f"<p>操作人：{html.escape(claims.who)}，时间：{when:%Y-%m-%d %H:%M}</p>"
            )
            self._send(HTTPStatus.OK, _page(f"{ACTION_ZH[claims.action]}：完成", body, ok=True))

    return Handler
