"""The ``email`` channel: SMTP, one multipart/alternative message (plain text + HTML).

Settings: ``recipients`` (To:) and ``smtp`` (host, port, ``security``:
``starttls`` | ``ssl`` | ``none``, ``user``, ``sender``); the password comes
from the env variable named by ``secret_env`` (required when ``user`` is set).
The ``Message-ID`` is derived from the outbox dedup key so a mail server or
client can spot a repeat after an at-least-once retry. Files the payload
refers to (``payload["attachments"]``, e.g. the daily brief's PDF; see
:mod:`alerts.attachments`) are attached (multipart/mixed), read at every attempt.

Failures: connection refused/timeout/disconnect and SMTP 4xx replies are
temporary; authentication failures, refused recipients and other 5xx replies
are permanent.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from alerts.attachments import load_attachments
from alerts.messages import message_of
from alerts.notifiers import register_notifier
from alerts.notifiers._http import secret_from_env
from core.errors import ConfigError, NotifierError
from core.models import Notification
from core.settings import ChannelConfig, SmtpConfig


@register_notifier("email")
class EmailNotifier:
    """Sends each notification as one e-mail to all ``recipients``."""

    def __init__(
        self,
        name: str,
        smtp: SmtpConfig,
        recipients: list[str],
        *,
        password: str = "",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ConfigError("recipients: an email channel needs at least one address")
        self.name = name
        self.smtp = smtp
        self.recipients = list(recipients)
        self._password = password
        self._ssl_context = ssl_context or ssl.create_default_context()

    @classmethod
    def from_config(cls, channel: ChannelConfig) -> EmailNotifier:
        """Raises ``ConfigError`` without ``smtp``/``recipients`` or a password for ``user``."""
        if channel.smtp is None:
            raise ConfigError("smtp: an email channel needs smtp.host and smtp.sender")
        password = secret_from_env(channel, required=channel.smtp.user is not None)
        return cls(channel.name, channel.smtp, channel.recipients, password=password)

    def build(self, notification: Notification) -> EmailMessage:
        """The MIME message for ``notification`` (text part first, HTML alternative)."""
        message = message_of(notification)
        mail = EmailMessage()
        mail["Subject"] = notification.subject
        mail["From"] = self.smtp.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(localtime=False)
        digest = hashlib.sha256(f"{self.name}|{notification.dedup_key}".encode()).hexdigest()
        # sender may be "舆情监测 <alerts@bank.example>": take the address's domain.
        domain = parseaddr(self.smtp.sender)[1].rpartition("@")[2] or "yuqing.local"
        mail["Message-ID"] = f"<{digest[:32]}@{domain}>"
        mail["X-Yuqing-Incident"] = str(notification.incident_id or "")
        mail.set_content(notification.body if not notification.payload else message.text())
        mail.add_alternative(message.html(), subtype="html")
        # Files referenced by the payload (the daily brief's PDF), read at every attempt.
        for item in load_attachments(notification):
            mail.add_attachment(
                item.data, maintype=item.maintype, subtype=item.subtype, filename=item.filename
            )
        return mail

    def _connect(self) -> smtplib.SMTP:
        cfg = self.smtp
        if cfg.security == "ssl":
            return smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout_seconds, context=self._ssl_context
            )
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
        if cfg.security == "starttls":
            client.starttls(context=self._ssl_context)
        return client

    def send(self, notification: Notification) -> None:
        """Deliver the e-mail; raises ``NotifierError`` (temporary or permanent) on failure.

        An attachment the payload refers to that is missing or changed is a
        permanent failure (see :mod:`alerts.attachments`)."""
        mail = self.build(notification)
        where = f"{self.smtp.host}:{self.smtp.port}"
        try:
            with self._connect() as client:
                if self.smtp.user:
                    client.login(self.smtp.user, self._password)
                client.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifierError(
                f"{self.name}: SMTP login refused by {where} ({exc.smtp_code})", temporary=False
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            refused = ", ".join(sorted(exc.recipients))
            raise NotifierError(
                f"{self.name}: {where} refused recipients {refused}", temporary=False
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifierError(
                f"{self.name}: {where} replied {exc.smtp_code} {exc.smtp_error!r}",
                temporary=400 <= exc.smtp_code < 500,
            ) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            # Includes SMTPServerDisconnected, connection refused, TLS failures, timeouts.
            raise NotifierError(
                f"{self.name}: cannot deliver via {where}: {type(exc).__name__}: {exc}",
                temporary=True,
            ) from None

    def __repr__(self) -> str:
        return f"<EmailNotifier {self.name!r} via {self.smtp.host}:{self.smtp.port}>"
