"""Files attached to a notification (the daily brief's PDF), referenced from its payload.

The outbox row keeps a *reference* — ``payload["attachments"]`` is a list of
``{"path", "filename", "content_type", "sha256", "size"}`` — and the file
lives in the data directory (``<data_dir>/reports/``), written before the
notification is queued. Every send attempt reads the file again, so a retry
an hour later (or after a restart) attaches the same bytes; the checksum
proves it. A file that is gone or changed is a permanent failure naming the
path: sending the mail without the report, or with a different one, would
be worse than a clear error in the outbox.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotifierError
from core.models import Notification


@dataclass(frozen=True)
class Attachment:
    """One attached file, read and checked."""

    filename: str
    content_type: str
    data: bytes

    @property
    def maintype(self) -> str:
        return self.content_type.split("/", 1)[0]

    @property
    def subtype(self) -> str:
        return self.content_type.split("/", 1)[1].split(";", 1)[0].strip()


def attachment_ref(path: Path, *, filename: str, content_type: str) -> dict[str, Any]:
    """The payload entry for the file at ``path`` (absolute path, checksum and size)."""
    data = path.read_bytes()
    return {
        "path": str(path.resolve()),
        "filename": filename,
        "content_type": content_type,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }


def load_attachments(notification: Notification) -> list[Attachment]:
    """The files ``notification.payload["attachments"]`` refers to, read from disk.

    Raises ``NotifierError(temporary=False)`` naming the file when one is
    missing, unreadable, or not the file that was queued (checksum).
    """
    refs = notification.payload.get("attachments") or []
    out: list[Attachment] = []
    for ref in refs:
        path = Path(str(ref.get("path", "")))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NotifierError(
                f"attachment {path} of notification {notification.dedup_key!r} cannot be read: "
                f"{exc.strerror or exc}",
                temporary=False,
            ) from None
        expected = ref.get("sha256")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise NotifierError(
                f"attachment {path} of notification {notification.dedup_key!r} changed since "
                "it was queued (checksum mismatch)",
                temporary=False,
            )
        content_type = str(ref.get("content_type") or "application/octet-stream")
        if "/" not in content_type:
            content_type = "application/octet-stream"
        out.append(Attachment(str(ref.get("filename") or path.name), content_type, data))
    return out
