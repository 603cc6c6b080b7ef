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
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, sessionmaker
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
    # Added with issue 6 (grouping, silences); _add_missing_columns adds them to older databases.
    rules: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    members: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    silenced_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


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


class ProblemRow(Base):
    """A problem record (issue 7): one incident and its tickets, owned by the complaint team."""

    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), unique=True)
    title: Mapped[str] = mapped_column(Text)
    owner_team: Mapped[str] = mapped_column(String(200))
    owner_user: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    ticket_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


PROBLEM_STATUSES = ("open", "investigating", "resolved", "closed")
"""Statuses of a :class:`Problem`, in their usual order (any change is allowed and audited)."""
PROBLEM_STATUS_ZH: dict[str, str] = {
    "open": "待处理",
    "investigating": "处理中",
    "resolved": "已解决",
    "closed": "已关闭",
}
"""The Chinese label of each problem status."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A stored problem record, read together with what it is kept in sync with.

    ``ticket_statuses`` (ticket id → status) and ``incident_status`` are read
    from the tickets and incidents tables at the same time as the problem, so a
    pushed or imported ticket update shows here at once. A ticket id the store
    no longer has is absent from ``ticket_statuses``.
    """

    id: int
    incident_id: int
    title: str
    owner_team: str
    owner_user: str
    status: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    ticket_ids: list[str]
    ticket_statuses: dict[str, str]
    incident_status: str | None

    @property
    def incident_resolved(self) -> bool:
        """Whether the incident the problem was promoted from is resolved."""
        return self.incident_status == IncidentStatus.RESOLVED.value

    def open_ticket_ids(self, closed_statuses: Iterable[str]) -> list[str]:
        """Ticket ids whose status is not one of ``closed_statuses`` (case and spaces ignored).

        A ticket the store no longer has counts as open: nobody saw it closed.
        """
        closed = {s.strip().lower() for s in closed_statuses}
        statuses = self.ticket_statuses
        return [
            t
            for t in self.ticket_ids
            if t not in statuses or statuses[t].strip().lower() not in closed
        ]

    def all_tickets_closed(self, closed_statuses: Iterable[str]) -> bool:
        """Whether every linked ticket is closed in the complaint system."""
        return bool(self.ticket_ids) and not self.open_ticket_ids(closed_statuses)


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


class IncidentNoteRow(Base):
    """An analyst's note on an incident, or a saved draft report (``kind`` = ``draft``)."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16), default="note")
    user: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


@dataclass(frozen=True, slots=True)
class IncidentNote:
    """One note (``kind="note"``) or saved draft report (``kind="draft"``) of an incident."""

    id: int
    incident_id: int
    kind: str
    user: str
    text: str
    at: datetime


NOTE_KINDS = ("note", "draft")
"""Kinds of :class:`IncidentNote`: a free-text note, or a saved draft report."""
_NOTE_AUDIT_ACTIONS = {"note": "note", "draft": "draft_saved"}
_NOTE_MAX_CHARS = 20_000


class SilenceRow(Base):
    """A silence: notifications of matching incidents are held in ``[starts_at, ends_at)``."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str | None] = mapped_column(String(100))
    key: Mapped[str | None] = mapped_column(String(300))
    entity: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(100))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    include_grade_i: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(200))


@dataclass(frozen=True, slots=True)
class SilenceEntry:
    """One stored silence (``yuqing rules silence add``); matching is :mod:`storage.silences`."""

    id: int
    rule: str | None
    key: str | None
    entity: str | None
    topic: str | None
    source: str | None
    starts_at: datetime
    ends_at: datetime
    include_grade_i: bool
    created_by: str
    reason: str
    created_at: datetime
    removed_at: datetime | None
    removed_by: str | None


class DashboardUserRow(Base):
    """A dashboard user managed in the 用户管理 screen (config-file users are not here)."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(40))
    # Only ever a ``scrypt$…`` hash (dashboard.auth.hash_password); never a password.
    password_hash: Mapped[str] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(200))


@dataclass(frozen=True, slots=True)
class StoredUser:
    """One user of the ``users`` table (``password_hash`` is hidden from ``repr``)."""

    username: str
    display_name: str
    role: str
    password_hash: str = field(repr=False)
    enabled: bool = True
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None
    updated_by: str = ""


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
    "incidents": {
        "ticket_links": "JSON",
        "rules": "JSON",
        "members": "JSON",
        "silenced_by": "INTEGER",
    },
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

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        """The ticket with this id, or ``None``."""
        with self._session("get ticket") as s:
            row = s.get(TicketRow, ticket_id)
            return None if row is None else _ticket(row)

    # ------------------------------------------------------------------ problems (issue 7)

    def create_problem(
        self,
        incident_id: int,
        *,
        title: str,
        owner_team: str,
        ticket_ids: Sequence[str],
        actor: str,
        owner_user: str = "",
    ) -> Problem:
        """Promote incident ``incident_id`` and its tickets to a problem with status ``open``.

        Writes a ``problem_promote`` audit entry on ``problem:<id>`` and a
        ``promote`` entry on ``incident:<incident_id>`` (so the incident's
        timeline shows it) in the same transaction. Raises ``QueryError`` for
        an unknown incident, an incident already promoted (naming its problem),
        no ticket ids, or an empty ``actor`` or ``owner_team``.
        """
        ids = list(dict.fromkeys(t.strip() for t in ticket_ids if t.strip()))
        if not actor.strip():
            raise QueryError("create_problem: actor must not be empty")
        if not owner_team.strip():
            raise QueryError("create_problem: owner_team must not be empty")
        if not ids:
            raise QueryError(f"incident {incident_id} has no linked complaint tickets to promote")
        now = _aware(self._clock(), "clock()")
        try:
            with self._session("create problem") as s:
                self._require(s, IncidentRow, incident_id, "incident")
                taken = s.scalar(select(ProblemRow.id).where(ProblemRow.incident_id == incident_id))
                if taken is not None:
                    raise QueryError(f"incident {incident_id} is already problem {taken}")
                row = ProblemRow(
                    incident_id=incident_id,
                    title=title,
                    owner_team=owner_team.strip(),
                    owner_user=owner_user.strip(),
                    status=PROBLEM_STATUSES[0],
                    created_at=now,
                    updated_at=now,
                    created_by=actor,
                    ticket_ids=ids,
                )
                s.add(row)
                s.flush()
                owner = f"{row.owner_team}/{row.owner_user}" if row.owner_user else row.owner_team
                s.add(
                    AuditRow(
                        at=now,
                        actor=actor,
                        action="problem_promote",
                        target=f"problem:{row.id}",
                        detail=f"incident {incident_id}; owner {owner}; tickets {', '.join(ids)}",
                    )
                )
                s.add(
                    AuditRow(
                        at=now,
                        actor=actor,
                        action="promote",
                        target=f"incident:{incident_id}",
                        detail=f"problem {row.id} ({owner}), {len(ids)} tickets",
                    )
                )
                return self._problems(s, [row])[0]
        except PermanentStoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # promoted concurrently
                raise QueryError(f"incident {incident_id} is already a problem") from exc
            raise

    def get_problem(self, problem_id: int) -> Problem | None:
        """The problem with this id, or ``None``."""
        with self._session("get problem") as s:
            row = s.get(ProblemRow, problem_id)
            return None if row is None else self._problems(s, [row])[0]

    def get_problem_for_incident(self, incident_id: int) -> Problem | None:
        """The problem incident ``incident_id`` was promoted to, or ``None``."""
        with self._session("get problem of incident") as s:
            row = s.scalars(select(ProblemRow).where(ProblemRow.incident_id == incident_id)).first()
            return None if row is None else self._problems(s, [row])[0]

    def list_problems(
        self, *, status: Sequence[str] | None = None, limit: int = 200
    ) -> list[Problem]:
        """Problems newest first (by ``created_at``), optionally only those in ``status``."""
        stmt = select(ProblemRow).order_by(ProblemRow.created_at.desc(), ProblemRow.id.desc())
        if status is not None:
            stmt = stmt.where(ProblemRow.status.in_(list(status)))
        with self._session("list problems") as s:
            return self._problems(s, list(s.scalars(stmt.limit(limit))))

    def set_problem_status(
        self, problem_id: int, status: str, *, actor: str, note: str = ""
    ) -> Problem:
        """Change the problem's status; a change writes a ``problem_status`` audit entry.

        Setting the status it already has changes nothing and writes nothing.
        Raises ``QueryError`` for an unknown id, a status not in
        :data:`PROBLEM_STATUSES` or an empty ``actor``.
        """
        if status not in PROBLEM_STATUSES:
            raise QueryError(
                f"unknown problem status {status!r}; use one of {', '.join(PROBLEM_STATUSES)}"
            )
        if not actor.strip():
            raise QueryError("set_problem_status: actor must not be empty")
        now = _aware(self._clock(), "clock()")
        with self._session("set problem status") as s:
            row = self._require(s, ProblemRow, problem_id, "problem")
            if row.status != status:
                detail = f"{row.status} → {status}" + (f": {note}" if note.strip() else "")
                row.status = status
                row.updated_at = now
                s.add(
                    AuditRow(
                        at=now,
                        actor=actor,
                        action="problem_status",
                        target=f"problem:{problem_id}",
                        detail=detail,
                    )
                )
            s.flush()
            return self._problems(s, [row])[0]

    def add_problem_tickets(
        self, problem_id: int, ticket_ids: Sequence[str], *, actor: str
    ) -> Problem:
        """Add tickets (linked to the incident since it was promoted) to the problem.

        Ids it already has are skipped; adding any writes a ``problem_tickets``
        audit entry. Raises ``QueryError`` for an unknown id or an empty ``actor``.
        """
        if not actor.strip():
            raise QueryError("add_problem_tickets: actor must not be empty")
        now = _aware(self._clock(), "clock()")
        with self._session("add problem tickets") as s:
            row = self._require(s, ProblemRow, problem_id, "problem")
            have = list(row.ticket_ids or [])
            new = [t for t in dict.fromkeys(x.strip() for x in ticket_ids) if t and t not in have]
            if new:
                row.ticket_ids = [*have, *new]  # a new list: JSON columns track assignment only
                row.updated_at = now
                s.add(
                    AuditRow(
                        at=now,
                        actor=actor,
                        action="problem_tickets",
                        target=f"problem:{problem_id}",
                        detail=f"added {', '.join(new)}",
                    )
                )
            s.flush()
            return self._problems(s, [row])[0]

    @staticmethod
    def _problems(session: Session, rows: Sequence[ProblemRow]) -> list[Problem]:
        """Rows as :class:`Problem`, with their tickets' and incidents' current statuses."""
        ticket_ids = sorted({t for r in rows for t in (r.ticket_ids or [])})
        statuses: dict[str, str] = {}
        for lo in range(0, len(ticket_ids), _IN_CHUNK):
            chunk = ticket_ids[lo : lo + _IN_CHUNK]
            stmt = select(TicketRow.ticket_id, TicketRow.status).where(
                TicketRow.ticket_id.in_(chunk)
            )
            statuses.update({tid: status for tid, status in session.execute(stmt)})
        incident_ids = sorted({r.incident_id for r in rows})
        incidents: dict[int, str] = {}
        for lo in range(0, len(incident_ids), _IN_CHUNK):
            chunk_ids = incident_ids[lo : lo + _IN_CHUNK]
            stmt_i = select(IncidentRow.id, IncidentRow.status).where(IncidentRow.id.in_(chunk_ids))
            incidents.update({iid: status for iid, status in session.execute(stmt_i)})
        return [
            Problem(
                id=r.id,
                incident_id=r.incident_id,
                title=r.title,
                owner_team=r.owner_team,
                owner_user=r.owner_user or "",
                status=r.status,
                created_at=r.created_at,
                updated_at=r.updated_at,
                created_by=r.created_by,
                ticket_ids=list(r.ticket_ids or []),
                ticket_statuses={t: statuses[t] for t in (r.ticket_ids or []) if t in statuses},
                incident_status=incidents.get(r.incident_id),
            )
            for r in rows
        ]

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

    def crawl_gaps(
        self, *, since: datetime, until: datetime, limit: int = 5000
    ) -> list[tuple[str, datetime, datetime | None]]:
        """Outages of sources as ``(source, start, end)``, oldest first: from a failed run
        started in ``[since, until)`` to the next successful run of that source before
        ``until`` (``end`` ``None``: still down at ``until``). Consecutive failures are one gap.

        The detectors read it so that a source with no successful run is a gap in
        the data, not a drop to zero (:mod:`alerts.health`).
        """
        start, end = _aware(since, "since"), _aware(until, "until")
        ok_run = aliased(CrawlRunRow)
        next_ok = (
            select(func.min(ok_run.started_at))
            .where(
                ok_run.source == CrawlRunRow.source,
                ok_run.ok.is_(True),
                ok_run.started_at > CrawlRunRow.started_at,
                ok_run.started_at < end,
            )
            .scalar_subquery()
        )
        stmt = (
            select(CrawlRunRow.source, CrawlRunRow.started_at, next_ok)
            .where(
                CrawlRunRow.ok.is_(False),
                CrawlRunRow.started_at >= start,
                CrawlRunRow.started_at < end,
            )
            .order_by(CrawlRunRow.started_at)
            .limit(limit)
        )
        gaps: dict[tuple[str, datetime | None], datetime] = {}
        with self._session("crawl gaps") as s:
            # Both times come back aware UTC (UtcDateTime, also through min()).
            for source, failed_at, recovered in s.execute(stmt):
                gaps.setdefault((source, recovered), failed_at)
        return sorted(
            ((src, first, back) for (src, back), first in gaps.items()), key=lambda g: g[1]
        )

    # ------------------------------------------------------------------ incident notes

    def add_note(
        self, incident_id: int, *, user: str, text: str, kind: str = "note"
    ) -> IncidentNote:
        """Store a note (or, ``kind="draft"``, a saved draft report) on the incident.

        The note and its audit entry (action ``note`` or ``draft_saved``, actor
        ``user``, detail: the start of the text) are written in one transaction.
        Raises ``QueryError`` for an unknown incident or kind, an empty ``user``
        or ``text``, or a text longer than 20 000 characters.
        """
        if not user.strip():
            raise QueryError("add_note: user must not be empty")
        if not text.strip():
            raise QueryError("add_note: the note text must not be empty")
        if len(text) > _NOTE_MAX_CHARS:
            raise QueryError(f"add_note: text is {len(text)} characters, at most {_NOTE_MAX_CHARS}")
        if kind not in NOTE_KINDS:
            raise QueryError(f"add_note: unknown kind {kind!r}; one of {', '.join(NOTE_KINDS)}")
        now = _aware(self._clock(), "clock()")
        with self._session("add note") as s:
            self._require(s, IncidentRow, incident_id, "incident")
            row = IncidentNoteRow(incident_id=incident_id, kind=kind, user=user, text=text, at=now)
            s.add(row)
            s.add(
                AuditRow(
                    at=now,
                    actor=user,
                    action=_NOTE_AUDIT_ACTIONS[kind],
                    target=f"incident:{incident_id}",
                    # The audit log keeps the start of a note; a draft is long, its size is enough.
                    detail=_clip(text, 500) if kind == "note" else f"{len(text)} 字",
                )
            )
            s.flush()
            return _note(row)

    def list_notes(
        self, incident_id: int, *, kind: str | None = None, limit: int = 200
    ) -> list[IncidentNote]:
        """Notes of one incident, oldest first (its newest ``limit``), optionally one ``kind``."""
        stmt = (
            select(IncidentNoteRow)
            .where(IncidentNoteRow.incident_id == incident_id)
            .order_by(IncidentNoteRow.at.desc(), IncidentNoteRow.id.desc())
        )
        if kind is not None:
            stmt = stmt.where(IncidentNoteRow.kind == kind)
        with self._session("list notes") as s:
            return [_note(r) for r in reversed(list(s.scalars(stmt.limit(limit))))]

    # ------------------------------------------------------------------ silences

    def add_silence(
        self,
        *,
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        reason: str,
        rule: str | None = None,
        key: str | None = None,
        entity: str | None = None,
        topic: str | None = None,
        source: str | None = None,
        include_grade_i: bool = False,
    ) -> SilenceEntry:
        """Store a silence and its audit entry in one transaction; returns it with its id.

        Raises ``QueryError`` when it has no matcher (rule, key, entity, topic or
        source), ends before it starts, or ``created_by``/``reason`` is empty.
        """
        if not created_by.strip():
            raise QueryError("silence: created_by must not be empty")
        if not reason.strip():
            raise QueryError("silence: a reason is required")
        if not any((rule, key, entity, topic, source)):
            raise QueryError("silence: give at least one of rule, key, entity, topic, source")
        start = _aware(starts_at, "starts_at")
        end = _aware(ends_at, "ends_at")
        if end <= start:
            raise QueryError("silence: ends_at must be after starts_at")
        now = _aware(self._clock(), "clock()")
        with self._session("add silence") as s:
            row = SilenceRow(
                rule=rule,
                key=key,
                entity=entity,
                topic=topic,
                source=source,
                starts_at=start,
                ends_at=end,
                include_grade_i=include_grade_i,
                created_by=created_by,
                reason=reason,
                created_at=now,
                removed_at=None,
                removed_by=None,
            )
            s.add(row)
            s.flush()
            s.add(
                AuditRow(
                    at=now,
                    actor=created_by,
                    action="silence_add",
                    target=f"silence:{row.id}",
                    detail=reason,
                )
            )
            s.flush()
            return _silence(row)

    def mark_silenced(self, incident_id: int, silence_id: int | None) -> None:
        """Set only ``incidents.silenced_by`` (the escalation job keeps it current as
        silences start and end, without rewriting the rest of the incident)."""
        with self._session("mark silenced") as s:
            row = self._require(s, IncidentRow, incident_id, "incident")
            row.silenced_by = silence_id

    def list_silences(
        self, *, active_at: datetime | None = None, include_removed: bool = False, limit: int = 200
    ) -> list[SilenceEntry]:
        """Silences newest first; ``active_at`` keeps those in force at that moment
        (started, not ended, not removed). Removed ones only with ``include_removed``."""
        stmt = select(SilenceRow).order_by(SilenceRow.created_at.desc(), SilenceRow.id.desc())
        if active_at is not None:
            at = _aware(active_at, "active_at")
            stmt = stmt.where(SilenceRow.starts_at <= at, SilenceRow.ends_at > at)
        if active_at is not None or not include_removed:
            stmt = stmt.where(SilenceRow.removed_at.is_(None))
        with self._session("list silences") as s:
            return [_silence(r) for r in s.scalars(stmt.limit(limit))]

    def remove_silence(self, silence_id: int, *, user: str, note: str = "") -> SilenceEntry:
        """End a silence now (kept for the record, with who removed it) and audit it.

        Raises ``QueryError`` for an unknown id or an empty ``user``; removing
        an already removed silence changes nothing.
        """
        if not user.strip():
            raise QueryError("remove silence: user must not be empty")
        now = _aware(self._clock(), "clock()")
        with self._session("remove silence") as s:
            row = self._require(s, SilenceRow, silence_id, "silence")
            if row.removed_at is None:
                row.removed_at = now
                row.removed_by = user
                s.add(
                    AuditRow(
                        at=now,
                        actor=user,
                        action="silence_remove",
                        target=f"silence:{silence_id}",
                        detail=note,
                    )
                )
            s.flush()
            return _silence(row)

    # ------------------------------------------------------------------ dashboard users

    def list_users(self) -> list[StoredUser]:
        """Every user of the ``users`` table, by user name (enabled or not)."""
        with self._session("list users") as s:
            return [
                _user(r)
                for r in s.scalars(select(DashboardUserRow).order_by(DashboardUserRow.username))
            ]

    def get_user(self, username: str) -> StoredUser | None:
        """The user named ``username``, or ``None``."""
        with self._session("get user") as s:
            row = s.get(DashboardUserRow, username)
            return None if row is None else _user(row)

    def add_user(
        self, *, username: str, display_name: str, role: str, password_hash: str, actor: str
    ) -> StoredUser:
        """Insert an enabled user and its audit entry (``user_add``) in one transaction.

        ``password_hash`` must be a ``scrypt$…`` hash: a clear password is refused.
        Raises ``QueryError`` for an existing name, an empty name, role or actor.
        """
        _check_user_change(username, actor, password_hash)
        if not role.strip():
            raise QueryError("add user: role must not be empty")
        now = _aware(self._clock(), "clock()")
        with self._session("add user") as s:
            if s.get(DashboardUserRow, username) is not None:
                raise QueryError(f"user {username!r} already exists")
            row = DashboardUserRow(
                username=username,
                display_name=display_name,
                role=role,
                password_hash=password_hash,
                enabled=True,
                created_at=now,
                created_by=actor,
                updated_at=now,
                updated_by=actor,
            )
            s.add(row)
            s.add(_user_audit(now, actor, "user_add", username, f"role={role}"))
            s.flush()
            return _user(row)

    def set_user_enabled(self, username: str, enabled: bool, *, actor: str) -> StoredUser:
        """Enable or disable a user, audited (``user_enable`` / ``user_disable``).

        Raises ``QueryError`` for an unknown user or an empty actor.
        """
        _check_user_change(username, actor)
        now = _aware(self._clock(), "clock()")
        with self._session("enable user") as s:
            row = self._require(s, DashboardUserRow, username, "user")
            row.enabled = enabled
            row.updated_at, row.updated_by = now, actor
            action = "user_enable" if enabled else "user_disable"
            s.add(_user_audit(now, actor, action, username))
            s.flush()
            return _user(row)

    def set_user_password(self, username: str, password_hash: str, *, actor: str) -> StoredUser:
        """Replace a user's password hash, audited (``user_password_reset``; no hash in it).

        Raises ``QueryError`` for an unknown user, an empty actor or a value
        that is not a ``scrypt$…`` hash.
        """
        _check_user_change(username, actor, password_hash)
        now = _aware(self._clock(), "clock()")
        with self._session("reset password") as s:
            row = self._require(s, DashboardUserRow, username, "user")
            row.password_hash = password_hash
            row.updated_at, row.updated_by = now, actor
            s.add(_user_audit(now, actor, "user_password_reset", username))
            s.flush()
            return _user(row)


# ---------------------------------------------------------------------- row -> model


def _user(row: DashboardUserRow) -> StoredUser:
    return StoredUser(**_columns(row))


def _user_audit(
    now: datetime, actor: str, action: str, username: str, detail: str = ""
) -> AuditRow:
    return AuditRow(at=now, actor=actor, action=action, target=f"user:{username}", detail=detail)


def _check_user_change(username: str, actor: str, password_hash: str | None = None) -> None:
    if not username.strip():
        raise QueryError("user name must not be empty")
    if not actor.strip():
        raise QueryError("the acting user must not be empty")
    # The store cannot check a hash (that is dashboard.auth); it can refuse what
    # is plainly not one, so a clear password never reaches the table.
    if password_hash is not None and not password_hash.startswith("scrypt$"):
        raise QueryError("password_hash must be a scrypt$… hash, never a clear password")


def _columns(row: Base) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}


def _incident(row: IncidentRow) -> Incident:
    values = _columns(row)
    values["ticket_links"] = values.get("ticket_links") or []
    values["rules"] = values.get("rules") or []
    values["members"] = values.get("members") or []
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


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _note(row: IncidentNoteRow) -> IncidentNote:
    return IncidentNote(
        id=row.id,
        incident_id=row.incident_id,
        kind=row.kind,
        user=row.user,
        text=row.text,
        at=row.at,
    )


def _silence(row: SilenceRow) -> SilenceEntry:
    return SilenceEntry(**_columns(row))
