"""Shared plumbing of the HTTP channels: POST JSON with the stdlib, classify failures, read secrets.

Failure classes (the outbox retries temporary ones, gives up on permanent ones):

* connection refused/reset, DNS failure, timeout, HTTP 5xx, HTTP 429 → temporary;
* any other HTTP 4xx → permanent (the request itself is wrong: bad token, bad URL).

Secrets travel in URLs (robot tokens) and headers, so no error message or log
line here ever contains a full URL: :func:`redact` keeps scheme, host and path.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from core.errors import ConfigError, NotifierError
from core.settings import ChannelConfig

logger = logging.getLogger("alerts.notifiers")

MAX_ERROR_BODY = 300


def redact(url: str) -> str:
    """``scheme://host/path`` of ``url``: the query (tokens, signatures) is dropped."""
    parts = urlsplit(url)
    suffix = "?…" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}{suffix}"


def secret_from_env(channel: ChannelConfig, attr: str = "secret_env", *, required: bool) -> str:
    """The value of the env variable named by ``channel.<attr>``.

    Raises ``ConfigError`` (naming the variable, never the value) when it is
    required but not named, unset or empty. Returns ``""`` when optional and absent.
    """
    var = getattr(channel, attr)
    if not var:
        if required:
            raise ConfigError(f"{attr}: {channel.type} channel needs the name of an env variable")
        return ""
    value = os.environ.get(var, "")
    if not value and required:
        raise ConfigError(f"{attr}: environment variable {var} is not set")
    return value


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    shown: str | None = None,
) -> Any:
    """POST ``payload`` (or the pre-encoded ``body``) as JSON; return the decoded JSON reply.

    A reply that is not JSON is returned as ``None``. Raises
    ``NotifierError(temporary=…)`` as described in the module docstring.
    ``shown`` is how errors name the endpoint (default :func:`redact` of ``url``;
    pass one when the secret is in the path).
    """
    data = body if body is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )
    shown = shown or redact(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:MAX_ERROR_BODY].decode("utf-8", errors="replace")
        temporary = exc.code >= 500 or exc.code == 429
        raise NotifierError(
            f"HTTP {exc.code} from {shown}: {detail}", temporary=temporary
        ) from None
    except TimeoutError as exc:
        raise NotifierError(f"timeout after {timeout}s posting to {shown}", temporary=True) from exc
    except urllib.error.URLError as exc:
        raise NotifierError(f"cannot reach {shown}: {exc.reason}", temporary=True) from None
    except OSError as exc:  # connection reset mid-response and friends
        raise NotifierError(f"connection to {shown} failed: {exc}", temporary=True) from None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def check_robot_reply(
    reply: Any, *, channel: str, code_keys: tuple[str, ...], temporary_codes: frozenset[int]
) -> None:
    """Raise ``NotifierError`` when a robot's JSON reply carries a non-zero error code.

    Robots answer HTTP 200 with ``{"errcode": …}`` (WeCom, DingTalk) or
    ``{"code": …}`` (Feishu); ``temporary_codes`` (rate limits, "system busy")
    are retried, every other non-zero code is permanent (bad token, bad
    signature, keyword or IP not allowed). A reply without a code counts as delivered.
    """
    if not isinstance(reply, Mapping):
        return
    for key in code_keys:
        if key in reply:
            try:
                code = int(reply[key])
            except (TypeError, ValueError):
                code = -1
            if code == 0:
                return
            message = reply.get("errmsg") or reply.get("msg") or reply.get("StatusMessage") or ""
            raise NotifierError(
                f"{channel}: robot refused the message: {key}={code} {message}",
                temporary=code in temporary_codes,
            )
