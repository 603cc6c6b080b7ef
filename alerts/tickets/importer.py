"""Import complaint tickets from the exports of a complaint system.

Formats: CSV (UTF-8, UTF-8 with BOM, or GBK/GB18030 as Excel writes it on a
Chinese Windows — detected, and reported), XLSX (first sheet, streamed with
openpyxl's read-only mode) and JSON (an array of objects, or JSON lines).

Contract of :func:`import_tickets`:

* Header names are mapped to ticket fields by :class:`core.settings.TicketColumns`.
  A required column that is missing raises :class:`MissingColumns` naming
  every missing one — before anything is written.
* Every row is validated: an empty id, an unreadable date, a repeated id
  (later rows are rejected, the first is kept) or an invalid value rejects
  the row with its row number and reason.
* ``summary`` and ``customer_ref`` are PII-masked before they are stored.
* All-or-nothing per file: with any rejected row nothing is written unless
  ``partial=True``; then the valid rows are written and the report says how
  many were not. The file is read twice (validate, then write) so a bad row
  at the end of a huge file cannot leave its beginning half-imported.
* Writes are upserts by ``ticket_id`` in batches of ``batch_size``: importing
  the same file again changes nothing, a newer export updates status.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from alerts.tickets.problems import ProblemTicketSync
from core.errors import StoreError, YuqingError
from core.models import Ticket
from core.ports import StateStore
from core.settings import TicketColumns, TicketsConfig
from nlp.pii import mask_pii

log = logging.getLogger(__name__)

TicketFormat = Literal["auto", "csv", "xlsx", "json"]
Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``: phase ``"validate"`` or ``"write"``; total may be None."""

FIELDS: tuple[str, ...] = tuple(TicketColumns.model_fields)
_MAX_ID_LEN = 100  # the width of tickets.ticket_id in the state database
_CHUNK = 1 << 16


class TicketImportError(YuqingError):
    """The file cannot be imported at all (unreadable, unknown format, bad encoding)."""


class MissingColumns(TicketImportError):
    """Required columns are absent from the file's header."""

    def __init__(
        self, missing: Sequence[str], columns: TicketColumns, found: Sequence[str]
    ) -> None:
        self.missing = list(missing)
        wanted = "; ".join(f"{f} (one of: {', '.join(getattr(columns, f))})" for f in missing)
        shown = ", ".join(found) or "(none)"
        super().__init__(f"missing required column(s): {wanted}. Header found: {shown}")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row that was not imported: its row number in the file, id (if any) and why."""

    row: int
    ticket_id: str
    reason: str
    detail: str = ""


@dataclass(slots=True)
class ImportReport:
    """What one import did. ``imported`` counts tickets actually written."""

    path: Path
    format: str
    encoding: str | None = None
    read: int = 0
    valid: int = 0
    imported: int = 0
    partial: bool = False
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def committed(self) -> bool:
        """True when the valid rows were written (False: rejected rows, no ``partial``)."""
        return self.imported == self.valid and (self.partial or not self.rejected)

    def rejected_by_reason(self) -> Counter[str]:
        return Counter(r.reason for r in self.rejected)


# ---------------------------------------------------------------------- reading


def detect_format(path: Path) -> Literal["csv", "xlsx", "json"]:
    """The format of ``path`` from its extension, or its first bytes when that is unknown."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.lstrip(codecs.BOM_UTF8).lstrip()[:1] in (b"[", b"{"):
        return "json"
    return "csv"


def detect_encoding(path: Path) -> str:
    """``utf-8-sig``/``utf-16`` (by BOM), else ``utf-8`` or ``gb18030`` (Excel's GBK).

    Without a BOM the whole file is checked.

    Raises ``TicketImportError`` when the file is none of them.
    """
    with path.open("rb") as fh:
        head = fh.read(3)
    if head == codecs.BOM_UTF8:
        return "utf-8-sig"
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"  # Excel's "Unicode text" export (tab-separated)
    # GB18030 is a superset of GBK/GB2312; the whole file is checked because a
    # GBK character may first appear far below the header.
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return encoding
    raise TicketImportError(f"{path}: not UTF-8 and not GBK/GB18030 text; save the CSV as UTF-8")


def _iter_csv(path: Path, encoding: str) -> Iterator[tuple[int, list[str], list[Any]]]:
    with path.open(encoding=encoding, newline="") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(fh, delimiter=delimiter)
        header: list[str] | None = None
        for values in reader:
            if header is None:
                header = [h.strip() for h in values]
                continue
            if not any(v.strip() for v in values):
                continue  # blank lines at the end of Excel exports
            # line_num is the line the record ended on: a quoted multi-line
            # summary makes it larger than the record index, and it is what
            # an analyst sees in an editor.
            yield reader.line_num, header, values
        if header is None:
            raise TicketImportError(f"{path}: empty file (no header row)")


def _iter_xlsx(path: Path) -> Iterator[tuple[int, list[str], list[Any]]]:
    try:
        from openpyxl import load_workbook  # type: ignore[import-untyped]  # ships no types
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise TicketImportError("reading XLSX needs the 'openpyxl' package") from exc
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise TicketImportError(f"{path}: not a readable XLSX workbook: {exc}") from exc
    try:
        sheet = workbook.worksheets[0]
        header: list[str] | None = None
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if header is None:
                header = ["" if v is None else str(v).strip() for v in values]
                continue
            if all(v is None or str(v).strip() == "" for v in values):
                continue
            yield number, header, list(values)
        if header is None:
            raise TicketImportError(f"{path}: the first sheet is empty (no header row)")
    finally:
        workbook.close()


def _iter_json(path: Path, encoding: str) -> Iterator[tuple[int, list[str], list[Any]]]:
    with path.open(encoding=encoding) as fh:
        first = ""
        while not first:
            char = fh.read(1)
            if not char:
                raise TicketImportError(f"{path}: empty file")
            first = char.strip()
        fh.seek(0)
        if first == "[":
            # A JSON array must be parsed whole; JSON lines is the streaming form.
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise TicketImportError(f"{path}: not valid JSON: {exc}") from exc
            records: Iterator[tuple[int, Any]] = enumerate(data, start=1)
        else:
            records = _json_lines(path, fh)
        for number, obj in records:
            if not isinstance(obj, dict):
                yield number, [], [obj]  # rejected by the caller as not an object
                continue
            keys = [str(k).strip() for k in obj]
            yield number, keys, list(obj.values())


def _json_lines(path: Path, fh: Any) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise TicketImportError(f"{path}: line {number} is not valid JSON: {exc}") from exc


# ---------------------------------------------------------------------- mapping and validation


def resolve_columns(header: Sequence[str], columns: TicketColumns) -> dict[str, int]:
    """field → index in ``header``, for every field whose column is present (case-insensitive)."""
    index = {h.strip().lower(): i for i, h in reversed(list(enumerate(header)))}
    mapping: dict[str, int] = {}
    for name in FIELDS:
        for alias in getattr(columns, name):
            if alias.strip().lower() in index:
                mapping[name] = index[alias.strip().lower()]
                break
    return mapping


_DATE_FORMATS = ("%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日", "%Y%m%d%H%M%S")


def parse_time(value: Any, zone: ZoneInfo) -> datetime:
    """A timezone-aware datetime from a cell; naive values are read in ``zone``.

    Accepts ``datetime``/``date`` objects (XLSX), ISO 8601 (``T`` or space,
    ``-`` or ``/``, optional offset or ``Z``) and ``2026年11月23日 14:05``.
    Raises ``ValueError`` otherwise.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = str(value or "").strip()
        if not text:
            raise ValueError("empty")
        parsed = _parse_text_time(text)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed


def _parse_text_time(text: str) -> datetime:
    iso = re.sub(r"^(\d{4})/(\d{1,2})/(\d{1,2})", _pad_date, text)
    iso = re.sub(r"^(\d{4})-(\d{1,2})-(\d{1,2})", _pad_date, iso)
    # Excel writes "2026/11/3 9:05": fromisoformat needs a two-digit hour.
    iso = re.sub(r"^(\d{4}-\d{2}-\d{2}[ T])(\d)(?=:)", r"\g<1>0\2", iso)
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"unreadable time {text!r}")


def _pad_date(m: re.Match[str]) -> str:
    return f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"


def mask_customer_ref(value: str) -> str:
    """A customer reference with personal numbers masked.

    Phones, ID and card numbers are masked by :func:`nlp.pii.mask_pii`; any
    other reference longer than 6 characters keeps only its first 2 and last
    4 characters, so the same customer still looks the same across tickets.
    """
    masked = mask_pii(value.strip())
    if "*" in masked or len(masked) <= 6:
        return masked
    return masked[:2] + "*" * (len(masked) - 6) + masked[-4:]


def _cell(values: Sequence[Any], mapping: dict[str, int], name: str) -> Any:
    i = mapping.get(name)
    if i is None or i >= len(values):
        return None
    return values[i]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel turns numeric ids into floats
    return str(value).strip()


def row_to_ticket(
    values: Sequence[Any], mapping: dict[str, int], zone: ZoneInfo
) -> tuple[Ticket | None, str, str, str]:
    """``(ticket, ticket_id, reason, detail)``: a ticket, or ``None`` with a reason key.

    Reason keys: ``empty_id``, ``bad_date``, ``invalid``.
    """
    ticket_id = _text(_cell(values, mapping, "ticket_id"))
    if not ticket_id:
        return None, "", "empty_id", "ticket id is empty"
    if len(ticket_id) > _MAX_ID_LEN:
        return None, ticket_id[:40], "invalid", f"ticket id longer than {_MAX_ID_LEN} characters"
    try:
        created_at = parse_time(_cell(values, mapping, "created_at"), zone)
    except (ValueError, OverflowError) as exc:
        return None, ticket_id, "bad_date", f"created_at: {exc}"
    updated_at: datetime | None = None
    raw_updated = _cell(values, mapping, "updated_at")
    if _text(raw_updated):
        try:
            updated_at = parse_time(raw_updated, zone)
        except (ValueError, OverflowError) as exc:
            return None, ticket_id, "bad_date", f"updated_at: {exc}"
    fields = {
        name: _text(_cell(values, mapping, name))
        for name in ("channel", "branch", "product", "category", "priority", "status")
    }
    try:
        ticket = Ticket(
            ticket_id=ticket_id,
            created_at=created_at,
            updated_at=updated_at,
            summary=mask_pii(_text(_cell(values, mapping, "summary"))),
            customer_ref=mask_customer_ref(_text(_cell(values, mapping, "customer_ref"))),
            **fields,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return None, ticket_id, "invalid", f"{where}: {first['msg']}"
    return ticket, ticket_id, "", ""


# ---------------------------------------------------------------------- import


class _Source:
    """One file, readable any number of times as (row number, ticket or rejection)."""

    def __init__(
        self, path: Path, fmt: TicketFormat, config: TicketsConfig, zone: ZoneInfo
    ) -> None:
        if not path.is_file():
            raise TicketImportError(f"{path}: no such file")
        self.path = path
        self.format: Literal["csv", "xlsx", "json"] = detect_format(path) if fmt == "auto" else fmt
        self.encoding = None if self.format == "xlsx" else detect_encoding(path)
        self.config = config
        self.zone = zone

    def _raw(self) -> Iterator[tuple[int, list[str], list[Any]]]:
        if self.format == "csv":
            assert self.encoding is not None
            return _iter_csv(self.path, self.encoding)
        if self.format == "xlsx":
            return _iter_xlsx(self.path)
        assert self.encoding is not None
        return _iter_json(self.path, self.encoding)

    def rows(self) -> Iterator[tuple[int, Ticket | None, Rejected | None]]:
        """Validated rows; raises ``MissingColumns`` at the first header lacking a required one."""
        last_header: list[str] | None = None
        mapping: dict[str, int] = {}
        for number, header, values in self._raw():
            if not header and self.format == "json":
                yield number, None, Rejected(number, "", "invalid", "not a JSON object")
                continue
            if header != last_header:
                new_mapping = resolve_columns(header, self.config.columns)
                missing = [f for f in self.config.required if f not in new_mapping]
                if missing and last_header is None:
                    raise MissingColumns(missing, self.config.columns, header)
                if missing:
                    # Only JSON records change keys mid-file: reject that record,
                    # not the whole file.
                    detail = "missing " + ", ".join(missing)
                    yield number, None, Rejected(number, "", "missing_field", detail)
                    continue
                mapping, last_header = new_mapping, header
            ticket, tid, reason, detail = row_to_ticket(values, mapping, self.zone)
            if ticket is None:
                yield number, None, Rejected(number, tid, reason, detail)
            else:
                yield number, ticket, None


def import_tickets(
    path: Path,
    store: StateStore,
    config: TicketsConfig,
    *,
    timezone: str,
    fmt: TicketFormat = "auto",
    partial: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Validate ``path`` and upsert its tickets into ``store`` (see the module contract).

    ``timezone`` is used for naive times unless ``config.timezone`` is set.
    Raises ``TicketImportError`` (incl. ``MissingColumns``) when the file
    cannot be imported at all — nothing is written then. A ``StoreError`` from
    the store is let through: earlier batches may already be written, so the
    caller reports the import as failed and re-runs it (upserts make that safe).
    """
    zone = ZoneInfo(config.timezone or timezone)
    source = _Source(path, fmt, config, zone)
    report = ImportReport(
        path=path, format=source.format, encoding=source.encoding, partial=partial
    )
    log.info("importing tickets from %s (%s, %s)", path, source.format, source.encoding or "-")

    # Pass 1: validate everything; only ids are kept, so memory stays small.
    first_row: dict[str, int] = {}
    for number, ticket, rejected in source.rows():
        report.read += 1
        if rejected is not None:
            report.rejected.append(rejected)
        elif ticket is not None:
            seen = first_row.get(ticket.ticket_id)
            if seen is not None:
                report.rejected.append(
                    Rejected(number, ticket.ticket_id, "duplicate_id", f"same id as row {seen}")
                )
            else:
                first_row[ticket.ticket_id] = number
                report.valid += 1
        if progress is not None and report.read % 500 == 0:
            progress("validate", report.read, None)
    if progress is not None:
        progress("validate", report.read, report.read)

    if report.rejected and not partial:
        log.warning(
            "%s: %d of %d rows rejected; nothing imported (all-or-nothing)",
            path,
            len(report.rejected),
            report.read,
        )
        return report

    # Pass 2: write the valid rows (the first occurrence of each id) in batches.
    sync = ProblemTicketSync.before(store, first_row, config.closed_statuses)
    batch: list[Ticket] = []
    for number, ticket, _rejected in source.rows():
        if ticket is None or first_row.get(ticket.ticket_id) != number:
            continue
        batch.append(ticket)
        if len(batch) >= config.batch_size:
            report.imported += store.upsert_tickets(batch)
            batch.clear()
            if progress is not None:
                progress("write", report.imported, report.valid)
    if batch:
        report.imported += store.upsert_tickets(batch)
    if progress is not None:
        progress("write", report.imported, report.valid)
    record_problem_changes(sync, actor=f"import {path.name}")
    log.info(
        "%s: %d tickets imported, %d rows rejected", path, report.imported, len(report.rejected)
    )
    return report


def record_problem_changes(sync: ProblemTicketSync, *, actor: str) -> None:
    """Audit the problems whose tickets changed status (best effort: the tickets are written).

    A store error here is logged, not raised: the tickets themselves are
    stored, and failing the import or push now would only make the sender retry
    a write that already happened.
    """
    try:
        changed = sync.record(actor=actor)
    except StoreError as exc:
        log.warning("tickets written, but their problems' history was not: %s", exc)
        return
    if changed:
        log.info("%d problem record(s) saw ticket status changes (%s)", changed, actor)


def tickets_from_records(
    records: Sequence[Any], config: TicketsConfig, *, timezone: str
) -> tuple[list[Ticket], list[Rejected]]:
    """Validate already-parsed records (pushed JSON objects) like the rows of a file.

    Record numbers are 1-based positions in ``records``. A record that is not
    an object or lacks a required field is rejected (``invalid`` /
    ``missing_field``) instead of failing the whole batch; a repeated id is
    ``duplicate_id`` (the first is kept). PII is masked as in :func:`import_tickets`.
    """
    zone = ZoneInfo(config.timezone or timezone)
    tickets: list[Ticket] = []
    rejected: list[Rejected] = []
    first: dict[str, int] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            rejected.append(Rejected(number, "", "invalid", "not a JSON object"))
            continue
        header = [str(k).strip() for k in record]
        mapping = resolve_columns(header, config.columns)
        missing = [f for f in config.required if f not in mapping]
        if missing:
            detail = "missing " + ", ".join(missing)
            rejected.append(Rejected(number, "", "missing_field", detail))
            continue
        ticket, tid, reason, detail = row_to_ticket(list(record.values()), mapping, zone)
        if ticket is None:
            rejected.append(Rejected(number, tid, reason, detail))
        elif ticket.ticket_id in first:
            detail = f"same id as record {first[ticket.ticket_id]}"
            rejected.append(Rejected(number, ticket.ticket_id, "duplicate_id", detail))
        else:
            first[ticket.ticket_id] = number
            tickets.append(ticket)
    return tickets, rejected
