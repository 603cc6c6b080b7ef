"""Operational state in a SQL database: a :class:`core.ports.StateStore` on SQLAlchemy 2.0.

Incidents, alerts, acknowledgements, the audit log, the notification outbox,
complaint tickets and crawl runs. SQLite by default (one file, WAL mode);
PostgreSQL in production; any SQLAlchemy URL should work.

Times are stored as UTC. SQLite has no time zone type, so values are written
as naive UTC there; every datetime this module returns is timezone-aware UTC.

The schema is created with ``create_all`` when the store is built. There are
no migrations yet: a column added later needs one (Alembic) before release.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateSchema
from sqlalchemy.types import TypeDecorator

from core.errors import ConfigError, PermanentStoreError, QueryError, StoreUnavailable
from core.models import Alert, CrawlRun, Incident, Notification, Ticket, utcnow
from core.vocab import IncidentStatus

log = logging.getLogger(__name__)

_ROW = TypeVar("_ROW", bound="Base")
_IN_CHUNK = 500


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware UTC.

    Naive datetimes are refused on write: guessing their zone is how an
    alert ends up eight hours off.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: state times must be timezone-aware")
        value = value.astimezone(UTC)
        # Only PostgreSQL keeps the zone; elsewhere store naive UTC so that
        # comparisons in SQL are between like values.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_rule_key_status", "rule", "key", "status"),
        Index("ix_incidents_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    first_seen: Mapped[datetime | None]
    post_count: Mapped[int] = mapped_column(Integer, default=0)
    peak_count: Mapped[int] = mapped_column(Integer, default=0)
    post_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    topic: Mapped[str | None] = mapped_column(String(40))
    entity: Mapped[str | None] = mapped_column(String(200))
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    ticket_links: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class AlertRow(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    rule: Mapped[str] = mapped_column(String(100))
    grade: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AcknowledgementRow(Base):
    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("channel", "dedup_key", name="uq_outbox_channel_dedup_key"),
        Index("ix_outbox_due", "sent_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(100))
    dedup_key: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # NULL while unsent means "gave up" (a permanent failure): never due again.
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # Added with issue 6; _add_missing_columns adds it to older databases.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class EscalationRow(Base):
    """One step of an incident up the audience ladder (level 0 = the first audience)."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("incident_id", "level", name="uq_escalations_level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    level: Mapped[int] = mapped_column(Integer)
    audience: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text, default="")


class TicketRow(Base):
    __tablename__ = "tickets"

    ticket_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    updated_at: Mapped[datetime | None]
    channel: Mapped[str] = mapped_column(String(100), default="")
    branch: Mapped[str] = mapped_column(String(200), default="")
    product: Mapped[str] = mapped_column(String(200), default="")
    category: Mapped[str] = mapped_column(String(200), default="")
    priority: Mapped[str] = mapped_column(String(50), default="")
    status: Mapped[str] = mapped_column(String(50), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    customer_ref: Mapped[str] = mapped_column(String(200), default="")


class CrawlRunRow(Base):
    __tablename__ = "crawl_runs"
    __table_args__ = (Index("ix_crawl_runs_source_started", "source", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool] = mapped_column(Boolean, default=True)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    kept: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log (who did what to which target, when)."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True, slots=True)
class Escalation:
    """One recorded escalation step of an incident."""

    id: int
    incident_id: int
    level: int
    audience: str
    at: datetime
    actor: str
    note: str


_ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "outbox": {"payload": "JSON"},
    "incidents": {"ticket_links": "JSON"},
}
"""Columns added after a table first shipped: (table → column → SQL type), for databases
created before them. A stop-gap until the schema has real (Alembic) migrations."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """One acknowledgement of an incident by a user."""

    id: int
    incident_id: int
    user: str
    note: str
    at: datetime


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise QueryError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _hidden(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class SqlStateStore:
    """A :class:`core.ports.StateStore` on any SQLAlchemy URL.

    ``url``: e.g. ``sqlite:///var/state.db`` (the parent directory is created)
    or ``postgresql+psycopg://user@host/db``. ``schema``: put every table in
    this schema (PostgreSQL; created if missing) — tests use a throw-away one.
    ``clock``: the time used for acknowledgements, resolutions and the audit log.

    Tables are created on construction. Raises ``StoreUnavailable`` (naming
    the URL, password hidden) if the database cannot be reached, and
    ``ConfigError`` for a malformed URL or a schema on SQLite. Every method
    raises ``StoreUnavailable`` when the database goes away, and ``QueryError``
    for an unknown id or a naive datetime.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        busy_timeout_ms: int = 5000,
    ) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ConfigError(f"state database URL is not valid: {exc}") from exc
        self._url = parsed
        self._shown = _hidden(parsed)
        self._clock = clock
        self._schema = schema
        self._engine = self._make_engine(parsed, busy_timeout_ms)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        try:
            with self._engine.begin() as conn:
                if schema is not None:
                    conn.execute(CreateSchema(schema, if_not_exists=True))
                Base.metadata.create_all(conn)
                self._add_missing_columns(conn)
        except (OperationalError, InterfaceError) as exc:
            self._engine.dispose()
            raise StoreUnavailable(f"state database {self._shown} unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            self._engine.dispose()
            raise StoreUnavailable(
                f"state database {self._shown}: cannot create tables: {exc.orig}"
            ) from exc

    def _add_missing_columns(self, conn: Any) -> None:
        """``ALTER TABLE … ADD COLUMN`` for the nullable columns in ``_ADDED_COLUMNS``
        that an existing database lacks (``create_all`` never alters a table)."""
        inspector = inspect(conn)
        for table, columns in _ADDED_COLUMNS.items():
            have = {c["name"] for c in inspector.get_columns(table, schema=self._schema)}
            prefix = f'"{self._schema}".' if self._schema else ""
            for column, sql_type in columns.items():
                if column not in have:
                    log.info("state database: adding column %s.%s", table, column)
                    ddl = f"ALTER TABLE {prefix}{table} ADD COLUMN {column} {sql_type}"
                    conn.execute(text(ddl))

    def _make_engine(self, url: URL, busy_timeout_ms: int) -> Engine:
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        is_sqlite = url.get_backend_name() == "sqlite"
        memory = False
        if is_sqlite:
            if self._schema is not None:
                raise ConfigError("state database: 'schema' is only supported on PostgreSQL")
            db = url.database or ""
            memory = db in ("", ":memory:") or "mode=memory" in db
            if memory:
                # One shared connection, or every pool connection sees its own empty DB.
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                try:
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreUnavailable(
                        f"state database {self._shown}: cannot create directory: {exc}"
                    ) from exc
                kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
        engine = create_engine(url, **kwargs)
        if is_sqlite:

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode = WAL")  # the dashboard reads while we write
                cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                cur.execute("PRAGMA foreign_keys = ON")
                cur.close()

        if self._schema is not None:
            engine = engine.execution_options(schema_translate_map={None: self._schema})
        return engine

    @property
    def url(self) -> str:
        """The database URL with the password hidden (safe to log)."""
        return self._shown

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (e.g. for APScheduler's job store in the same database)."""
        return self._engine

    def close(self) -> None:
        """Dispose of the connection pool. Safe to call twice."""
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlStateStore({self._shown!r})"

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        """A session in one transaction; driver errors become store errors."""
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            err = StoreUnavailable(
                f"state database {self._shown} unavailable ({action}): {exc.orig}"
            )
            log.warning("%s", err)
            raise err from exc
        except IntegrityError as exc:
            raise PermanentStoreError(f"state database: {action} refused: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(
                    f"state database {self._shown} connection lost ({action}): {exc.orig}"
                ) from exc
            raise PermanentStoreError(f"state database: {action} failed: {exc.orig}") from exc

    @staticmethod
    def _require(session: Session, model: type[_ROW], key: Any, what: str) -> _ROW:
        row = session.get(model, key)
        if row is None:
            raise QueryError(f"unknown {what} {key!r}")
        return row

    @classmethod
    def _write_row(
        cls, session: Session, model: type[_ROW], key: int | None, values: dict[str, Any], what: str
    ) -> _ROW:
        """Insert a row (``key is None``) or update row ``key``; returns it, flushed.

        Raises ``QueryError`` when ``key`` does not exist.
        """
        if key is None:
            row = model(**values)
            session.add(row)
        else:
            row = cls._require(session, model, key, what)
            for name, value in values.items():
                setattr(row, name, value)
        session.flush()
        return row

    # ------------------------------------------------------------------ incidents

    def save_incident(self, incident: Incident) -> Incident:
        """Insert (``id is None``) or update an incident; returns it as stored, with its id.

        Raises ``QueryError`` when updating an id that does not exist.
        """
        values = incident.model_dump(exclude={"id"}, mode="python")
        with self._session("save incident") as s:
            return _incident(self._write_row(s, IncidentRow, incident.id, values, "incident"))

    def get_incident(self, incident_id: int) -> Incident | None:
        """The incident with this id, or ``None``."""
        with self._session("get incident") as s:
            row = s.get(IncidentRow, incident_id)
            return None if row is None else _incident(row)

    def find_active_incident(self, rule: str, key: str) -> Incident | None:
        """The newest not-resolved incident of ``rule`` about ``key``, or ``None``."""
        stmt = (
            select(IncidentRow)
            .where(
                IncidentRow.rule == rule,
                IncidentRow.key == key,
                IncidentRow.status != IncidentStatus.RESOLVED.value,
            )
            .order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
            .limit(1)
        )
        with self._session("find active incident") as s:
            row = s.scalars(stmt).first()
            return None if row is None else _incident(row)

    def list_incidents(
        self,
        *,
        status: Sequence[IncidentStatus] | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Incident]:
        """Incidents newest first (by ``opened_at``), optionally by status and ``since``.

        ``since`` keeps incidents with ``opened_at >= since``.
        Raises ``QueryError`` for a naive ``since``.
        """
        stmt = select(IncidentRow).order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
        if status is not None:
            stmt = stmt.where(IncidentRow.status.in_([IncidentStatus(s).value for s in status]))
        if since is not None:
            stmt = stmt.where(IncidentRow.opened_at >= _aware(since, "since"))
        with self._session("list incidents") as s:
            return [_incident(r) for r in s.scalars(stmt.limit(limit))]

    def acknowledge(self, incident_id: int, *, user: str, note: str = "") -> Incident:
        """Record that ``user`` acknowledged the incident; an open incident becomes acknowledged.

        Writes an acknowledgement row and an audit entry in one transaction.
        A resolved incident stays resolved (the acknowledgement is still kept).
        Raises ``QueryError`` for an unknown id or an empty ``user``.
        """
        if not user.strip():
            raise QueryError("acknowledge: user must not be empty")
        now = _aware(self._clock(), "clock()")
        with self._session("acknowledge") as s:
            row = self._require(s, IncidentRow, incident_id, "incident")
            if row.status == IncidentStatus.OPEN.value:
                row.status = IncidentStatus.ACKNOWLEDGED.value
            row.updated_at = now
            s.add(AcknowledgementRow(incident_id=incident_id, user=user, note=note, at=now))
            s.add(
                AuditRow(
                    at=now,
                    actor=user,
                    action="acknowledge",
                    target=f"incident:{incident_id}",
                    detail=note,
                )
            )
            s.flush()
            return _incident(row)

    def resolve(self, incident_id: int, *, user: str, note: str = "") -> Incident:
        """Mark the incident resolved (``resolved_at`` = now, kept if already resolved).

        Writes an audit entry. Raises ``QueryError`` for an unknown id or an empty ``user``.
        """
        if not user.strip():
            raise QueryError("resolve: user must not be empty")
        now = _aware(self._clock(), "clock()")
        with self._session("resolve") as s:
            row = self._require(s, IncidentRow, incident_id, "incident")
            if row.status != IncidentStatus.RESOLVED.value:
                row.status = IncidentStatus.RESOLVED.value
                row.resolved_at = now
            row.updated_at = now
            s.add(
                AuditRow(
                    at=now,
                    actor=user,
                    action="resolve",
                    target=f"incident:{incident_id}",
                    detail=note,
                )
            )
            s.flush()
            return _incident(row)

    def list_acks(self, incident_id: int) -> list[Acknowledgement]:
        """Acknowledgements of one incident, oldest first (empty if none or unknown id)."""
        stmt = (
            select(AcknowledgementRow)
            .where(AcknowledgementRow.incident_id == incident_id)
            .order_by(AcknowledgementRow.at, AcknowledgementRow.id)
        )
        with self._session("list acknowledgements") as s:
            return [
                Acknowledgement(
                    id=r.id, incident_id=r.incident_id, user=r.user, note=r.note, at=r.at
                )
                for r in s.scalars(stmt)
            ]

    # ------------------------------------------------------------------ escalations

    def record_escalation(
        self, incident_id: int, level: int, audience: str, *, actor: str, note: str = ""
    ) -> bool:
        """Record that the incident reached escalation ``level`` (audience ``audience``).

        Idempotent: ``False`` when that level was already recorded (a second
        service or a repeated click changes nothing). Writes an ``escalate``
        audit entry with ``actor`` when it records. Raises ``QueryError`` for
        an unknown incident, a negative level or an empty ``actor``.
        """
        if not actor.strip():
            raise QueryError("record_escalation: actor must not be empty")
        if level < 0:
            raise QueryError(f"record_escalation: level must be >= 0, got {level}")
        now = _aware(self._clock(), "clock()")
        exists = select(EscalationRow.id).where(
            EscalationRow.incident_id == incident_id, EscalationRow.level == level
        )
        try:
            with self._session("record escalation") as s:
                self._require(s, IncidentRow, incident_id, "incident")
                if s.scalar(exists) is not None:
                    return False
                s.add(
                    EscalationRow(
                        incident_id=incident_id,
                        level=level,
                        audience=audience,
                        at=now,
                        actor=actor,
                        note=note,
                    )
                )
                s.add(
                    AuditRow(
                        at=now,
                        actor=actor,
                        action="escalate",
                        target=f"incident:{incident_id}",
                        detail=f"level {level} ({audience}) {note}".strip(),
                    )
                )
        except PermanentStoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False  # recorded concurrently by another process
            raise
        return True

    def list_escalations(self, incident_id: int) -> list[Escalation]:
        """Escalation steps of one incident, lowest level first (empty if none)."""
        stmt = (
            select(EscalationRow)
            .where(EscalationRow.incident_id == incident_id)
            .order_by(EscalationRow.level)
        )
        with self._session("list escalations") as s:
            return [
                Escalation(
                    id=r.id,
                    incident_id=r.incident_id,
                    level=r.level,
                    audience=r.audience,
                    at=r.at,
                    actor=r.actor,
                    note=r.note,
                )
                for r in s.scalars(stmt)
            ]

    def escalation_level(self, incident_id: int) -> int | None:
        """The highest recorded escalation level of the incident, ``None`` if none."""
        stmt = select(func.max(EscalationRow.level)).where(EscalationRow.incident_id == incident_id)
        with self._session("escalation level") as s:
            level = s.scalar(stmt)
            return None if level is None else int(level)

    # ------------------------------------------------------------------ alerts

    def add_alert(self, alert: Alert) -> Alert:
        """Store a detector match; returns it with its id. Raises ``QueryError`` if the
        alert already has an id that does not exist (an existing id is updated)."""
        values = alert.model_dump(exclude={"id"}, mode="python")
        # details is free-form: make it JSON-safe (datetimes, enums) for the JSON column.
        values["details"] = alert.model_dump(mode="json", include={"details"})["details"]
        with self._session("add alert") as s:
            return _alert(self._write_row(s, AlertRow, alert.id, values, "alert"))

    def list_alerts(self, *, incident_id: int | None = None, limit: int = 100) -> list[Alert]:
        """Alerts newest first, optionally of one incident."""
        stmt = select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc())
        if incident_id is not None:
            stmt = stmt.where(AlertRow.incident_id == incident_id)
        with self._session("list alerts") as s:
            return [_alert(r) for r in s.scalars(stmt.limit(limit))]

    # ------------------------------------------------------------------ audit

    def audit(self, *, actor: str, action: str, target: str, detail: str = "") -> None:
        """Append one entry to the audit log, stamped with ``clock()``."""
        now = _aware(self._clock(), "clock()")
        with self._session("audit") as s:
            s.add(AuditRow(at=now, actor=actor, action=action, target=target, detail=detail))

    def list_audit(self, limit: int = 100, *, target: str | None = None) -> list[AuditEntry]:
        """Audit entries newest first, optionally about one target (e.g. ``incident:7``)."""
        stmt = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc())
        if target is not None:
            stmt = stmt.where(AuditRow.target == target)
        with self._session("list audit") as s:
            return [
                AuditEntry(
                    id=r.id,
                    at=r.at,
                    actor=r.actor,
                    action=r.action,
                    target=r.target,
                    detail=r.detail,
                )
                for r in s.scalars(stmt.limit(limit))
            ]

    # ------------------------------------------------------------------ outbox

    def enqueue(self, notification: Notification) -> bool:
        """Queue a notification; ``False`` if one with the same (channel, dedup_key) exists.

        It is due at ``next_attempt_at``, or at once (``created_at``) when that is None.
        """
        values = notification.model_dump(exclude={"id"}, mode="python")
        if values["next_attempt_at"] is None and values["sent_at"] is None:
            values["next_attempt_at"] = values["created_at"]
        exists = select(OutboxRow.id).where(
            OutboxRow.channel == notification.channel,
            OutboxRow.dedup_key == notification.dedup_key,
        )
        try:
            with self._session("enqueue") as s:
                if s.scalar(exists) is not None:
                    return False
                s.add(OutboxRow(**values))
        except PermanentStoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return False  # another process queued the same message between check and insert
            raise
        return True

    def due_notifications(self, now: datetime, *, limit: int = 50) -> list[Notification]:
        """Unsent notifications with ``next_attempt_at <= now``, oldest (``created_at``) first.

        Notifications given up by ``mark_failed(..., retry_at=None)`` are never due.
        """
        stmt = (
            select(OutboxRow)
            .where(
                OutboxRow.sent_at.is_(None),
                OutboxRow.next_attempt_at.is_not(None),
                OutboxRow.next_attempt_at <= _aware(now, "now"),
            )
            .order_by(OutboxRow.created_at, OutboxRow.id)
            .limit(limit)
        )
        with self._session("due notifications") as s:
            return [_notification(r) for r in s.scalars(stmt)]

    def mark_sent(self, notification_id: int, when: datetime) -> None:
        """Record a successful delivery (counts as an attempt). ``QueryError`` if unknown."""
        when = _aware(when, "when")
        with self._session("mark sent") as s:
            row = self._require(s, OutboxRow, notification_id, "notification")
            row.sent_at = when
            row.attempts += 1
            row.next_attempt_at = None

    def mark_failed(self, notification_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; retry at ``retry_at``, or never when it is ``None``.

        Raises ``QueryError`` for an unknown id.
        """
        retry = None if retry_at is None else _aware(retry_at, "retry_at")
        with self._session("mark failed") as s:
            row = self._require(s, OutboxRow, notification_id, "notification")
            row.attempts += 1
            row.last_error = error[:4000]
            row.next_attempt_at = retry

    def list_notifications(
        self, *, incident_id: int | None = None, limit: int = 100
    ) -> list[Notification]:
        """Outbox entries newest first (sent, pending and given up), optionally of one incident."""
        stmt = select(OutboxRow).order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc())
        if incident_id is not None:
            stmt = stmt.where(OutboxRow.incident_id == incident_id)
        with self._session("list notifications") as s:
            return [_notification(r) for r in s.scalars(stmt.limit(limit))]

    # ------------------------------------------------------------------ tickets

    def upsert_tickets(self, tickets: Sequence[Ticket]) -> int:
        """Insert or update tickets by ``ticket_id`` in one transaction.

        Returns the number of distinct tickets written (a ticket repeated in the
        input counts once; its last occurrence wins).
        """
        latest = {t.ticket_id: t for t in tickets}
        ids = list(latest)
        with self._session(f"upsert {len(ids)} tickets") as s:
            existing: dict[str, TicketRow] = {}
            for lo in range(0, len(ids), _IN_CHUNK):
                chunk = ids[lo : lo + _IN_CHUNK]
                for row in s.scalars(select(TicketRow).where(TicketRow.ticket_id.in_(chunk))):
                    existing[row.ticket_id] = row
            for ticket_id, ticket in latest.items():
                values = ticket.model_dump(mode="python")
                current = existing.get(ticket_id)
                if current is None:
                    s.add(TicketRow(**values))
                else:
                    for name, value in values.items():
                        setattr(current, name, value)
        return len(ids)

    def list_tickets(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 500
    ) -> list[Ticket]:
        """Tickets newest first, ``since <= created_at < until`` when given."""
        stmt = select(TicketRow).order_by(TicketRow.created_at.desc(), TicketRow.ticket_id)
        if since is not None:
            stmt = stmt.where(TicketRow.created_at >= _aware(since, "since"))
        if until is not None:
            stmt = stmt.where(TicketRow.created_at < _aware(until, "until"))
        with self._session("list tickets") as s:
            return [_ticket(r) for r in s.scalars(stmt.limit(limit))]

    # ------------------------------------------------------------------ crawl runs

    def record_crawl_run(self, run: CrawlRun) -> CrawlRun:
        """Insert (``id is None``) or update a crawl run; returns it with its id.

        Raises ``QueryError`` when updating an id that does not exist.
        """
        values = run.model_dump(exclude={"id"}, mode="python")
        with self._session("record crawl run") as s:
            return _crawl_run(self._write_row(s, CrawlRunRow, run.id, values, "crawl run"))

    def list_crawl_runs(self, *, source: str | None = None, limit: int = 100) -> list[CrawlRun]:
        """Crawl runs newest first (by ``started_at``), optionally of one source."""
        stmt = select(CrawlRunRow).order_by(CrawlRunRow.started_at.desc(), CrawlRunRow.id.desc())
        if source is not None:
            stmt = stmt.where(CrawlRunRow.source == source)
        with self._session("list crawl runs") as s:
            return [_crawl_run(r) for r in s.scalars(stmt.limit(limit))]


# ---------------------------------------------------------------------- row -> model


def _columns(row: Base) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}


def _incident(row: IncidentRow) -> Incident:
    values = _columns(row)
    values["ticket_links"] = values.get("ticket_links") or []
    return Incident.model_validate(values)


def _alert(row: AlertRow) -> Alert:
    return Alert.model_validate(_columns(row))


def _notification(row: OutboxRow) -> Notification:
    values = _columns(row)
    values["payload"] = values.get("payload") or {}
    return Notification.model_validate(values)


def _ticket(row: TicketRow) -> Ticket:
    return Ticket.model_validate(_columns(row))


def _crawl_run(row: CrawlRunRow) -> CrawlRun:
    return CrawlRun.model_validate(_columns(row))
