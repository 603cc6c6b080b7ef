"""Ticket import: formats, encodings, validation, all-or-nothing, PII, idempotence."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.tickets.importer import (
    ImportReport,
    MissingColumns,
    TicketImportError,
    detect_encoding,
    import_tickets,
    mask_customer_ref,
    parse_time,
)
from core.settings import TicketsConfig
from storage.state import SqlStateStore

HEADER = "工单号,创建时间,渠道,网点,产品,类别,优先级,状态,摘要,客户号"
ROWS = [
    "TK001,2026-11-23 10:00,95xxx客服热线,澜海银行滨江支行,澜海稳盈3号,理财产品亏损,高,待处理,"
    "客户电话13812345678称稳盈3号净值跌破1元,C100234567",
    "TK002,2026/11/23 10:05:30,网点,澜海银行滨江支行,澜海稳盈3号,销售误导,高,待处理,"
    "客户要求赎回并退还本金,C100234999",
    "TK003,2026-11-23T02:10:00Z,监管转办,澜海银行城西支行,个人存款,服务态度,普通,处理中,排队过长,",
]


@pytest.fixture
def store(tmp_path: Path) -> SqlStateStore:
    s = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s  # type: ignore[misc]
    s.close()


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def run(path: Path, store: SqlStateStore, **kw: object) -> ImportReport:
    return import_tickets(path, store, TicketsConfig(), timezone="Asia/Shanghai", **kw)  # type: ignore[arg-type]


def test_csv_utf8_imports_every_row_with_local_time(tmp_path: Path, store: SqlStateStore) -> None:
    report = run(write_csv(tmp_path / "t.csv", [HEADER, *ROWS]), store)
    assert (report.read, report.imported, report.rejected) == (3, 3, [])
    assert report.encoding == "utf-8" and report.committed
    got = {t.ticket_id: t for t in store.list_tickets()}
    # Naive times are Asia/Shanghai: 10:00 +08:00 is 02:00 UTC.
    assert got["TK001"].created_at == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert got["TK002"].created_at == datetime(2026, 11, 23, 2, 5, 30, tzinfo=UTC)
    assert got["TK003"].created_at == datetime(2026, 11, 23, 2, 10, tzinfo=UTC)
    assert got["TK001"].branch == "澜海银行滨江支行" and got["TK001"].priority == "高"


def test_pii_is_masked_before_storing(tmp_path: Path, store: SqlStateStore) -> None:
    run(write_csv(tmp_path / "t.csv", [HEADER, *ROWS]), store)
    got = {t.ticket_id: t for t in store.list_tickets()}
    assert "13812345678" not in got["TK001"].summary and "138****5678" in got["TK001"].summary
    assert got["TK001"].customer_ref == "C1****4567"
    assert got["TK003"].customer_ref == ""


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_excel_encodings_are_detected(tmp_path: Path, store: SqlStateStore, encoding: str) -> None:
    path = write_csv(tmp_path / "t.csv", [HEADER, *ROWS], encoding=encoding)
    report = run(path, store)
    assert report.imported == 3
    assert report.encoding == ("utf-8-sig" if encoding == "utf-8-sig" else "gb18030")
    got = {t.ticket_id: t for t in store.list_tickets()}
    assert got["TK001"].product == "澜海稳盈3号"  # decoded, not mojibake


def test_excel_unicode_text_is_utf16_tab_separated(tmp_path: Path, store: SqlStateStore) -> None:
    path = tmp_path / "t.txt"
    text = "\r\n".join(line.replace(",", "\t") for line in [HEADER, *ROWS]) + "\r\n"
    path.write_bytes(text.encode("utf-16"))
    report = run(path, store)
    assert report.encoding == "utf-16" and report.imported == 3


def test_gbk_character_far_below_the_header_is_still_detected(tmp_path: Path) -> None:
    lines = ["ticket_id,created_at,summary"] + [f"T{i},2026-11-23,ok" for i in range(5000)]
    lines.append("T9,2026-11-23,滨江支行")
    path = write_csv(tmp_path / "t.csv", lines, encoding="gbk")
    assert detect_encoding(path) == "gb18030"


def test_undecodable_file_is_a_clear_error(tmp_path: Path, store: SqlStateStore) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"ticket_id,created_at\n\xff\xfe\xff\x00\x81,2026\n")
    with pytest.raises(TicketImportError, match="not UTF-8"):
        run(path, store)


def test_missing_columns_are_named_before_anything_is_written(
    tmp_path: Path, store: SqlStateStore
) -> None:
    path = write_csv(tmp_path / "t.csv", ["渠道,摘要", "热线,问题"])
    with pytest.raises(MissingColumns) as err:
        run(path, store)
    assert err.value.missing == ["ticket_id", "created_at"]
    assert "工单号" in str(err.value) and "创建时间" in str(err.value)
    assert store.list_tickets() == []


def test_bad_rows_make_an_all_or_nothing_import_write_nothing(
    tmp_path: Path, store: SqlStateStore
) -> None:
    lines = [HEADER, *ROWS, ",2026-11-23,,,,,,,,", "TK004,昨天下午,,,,,,,,", ROWS[0]]
    report = run(write_csv(tmp_path / "t.csv", lines), store)
    assert report.read == 6 and report.imported == 0 and not report.committed
    by_row = {r.row: (r.reason, r.ticket_id) for r in report.rejected}
    assert by_row == {
        5: ("empty_id", ""),
        6: ("bad_date", "TK004"),
        7: ("duplicate_id", "TK001"),
    }
    assert store.list_tickets() == []


def test_partial_import_writes_valid_rows_and_reports_the_rest(
    tmp_path: Path, store: SqlStateStore
) -> None:
    lines = [HEADER, *ROWS, "TK004,2026-13-45,,,,,,,,", ROWS[1]]
    report = run(write_csv(tmp_path / "t.csv", lines), store, partial=True)
    assert report.imported == 3 and report.committed
    assert report.rejected_by_reason() == {"bad_date": 1, "duplicate_id": 1}
    assert sorted(t.ticket_id for t in store.list_tickets()) == ["TK001", "TK002", "TK003"]


def test_reimport_is_idempotent_and_updates_status(tmp_path: Path, store: SqlStateStore) -> None:
    path = write_csv(tmp_path / "t.csv", [HEADER, *ROWS])
    run(path, store)
    run(path, store)
    assert len(store.list_tickets()) == 3
    newer = write_csv(tmp_path / "t2.csv", [HEADER, ROWS[0].replace("待处理", "已办结")])
    run(newer, store)
    got = {t.ticket_id: t for t in store.list_tickets()}
    assert len(got) == 3 and got["TK001"].status == "已办结"


def test_large_file_is_written_in_batches(tmp_path: Path, store: SqlStateStore) -> None:
    lines = ["ticket_id,created_at,summary"] + [
        f"T{i:05d},2026-11-23 10:00,第{i}条" for i in range(2500)
    ]
    seen: list[tuple[str, int, int | None]] = []
    report = import_tickets(
        write_csv(tmp_path / "t.csv", lines),
        store,
        TicketsConfig(batch_size=1000),
        timezone="Asia/Shanghai",
        progress=lambda phase, done, total: seen.append((phase, done, total)),
    )
    assert report.imported == 2500
    assert [s for s in seen if s[0] == "write"] == [
        ("write", 1000, 2500),
        ("write", 2000, 2500),
        ("write", 2500, 2500),
    ]
    assert len(store.list_tickets(limit=5000)) == 2500


def test_json_array_and_json_lines(tmp_path: Path, store: SqlStateStore) -> None:
    records = [
        {"ticket_id": "J1", "created_at": "2026-11-23T10:00:00+08:00", "status": "待处理"},
        {"ticket_id": "J2", "created_at": "2026-11-23 11:00", "summary": "邮箱 abc@example.com"},
    ]
    array = tmp_path / "t.json"
    array.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    assert run(array, store).imported == 2
    lines = tmp_path / "t.jsonl"
    lines.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n[1]\n",
        encoding="utf-8",
    )
    report = run(lines, store, partial=True)
    assert report.format == "json" and report.imported == 2
    assert [(r.row, r.reason) for r in report.rejected] == [(3, "invalid")]
    got = {t.ticket_id: t for t in store.list_tickets()}
    assert got["J2"].summary == "邮箱 a***@example.com"


def test_json_missing_columns(tmp_path: Path, store: SqlStateStore) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"id2": "x"}]), encoding="utf-8")
    with pytest.raises(MissingColumns):
        run(path, store)
    # A later record without a required key is one rejected record, not a broken file.
    records = [{"ticket_id": "J1", "created_at": "2026-11-23"}, {"ticket_id": "J2"}]
    path.write_text(json.dumps(records), encoding="utf-8")
    report = run(path, store)
    assert [(r.row, r.reason) for r in report.rejected] == [(2, "missing_field")]
    assert report.imported == 0


def test_xlsx_with_datetime_cells_and_numeric_ids(tmp_path: Path, store: SqlStateStore) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["工单号", "创建时间", "产品", "摘要"])
    sheet.append([10001, datetime(2026, 11, 23, 10, 0), "澜海稳盈3号", "净值跌破1元"])
    sheet.append(["X2", "2026-11-23 11:00", "澜海信用卡", "年费"])
    sheet.append([None, None, None, None])  # blank rows at the end of Excel sheets
    sheet.append(["X3", "not a date", "", ""])
    path = tmp_path / "t.xlsx"
    workbook.save(path)
    report = run(path, store, fmt="auto", partial=True)
    assert report.format == "xlsx" and report.imported == 2
    assert [(r.row, r.reason) for r in report.rejected] == [(5, "bad_date")]
    got = {t.ticket_id: t for t in store.list_tickets()}
    assert got["10001"].created_at == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_explicit_format_overrides_the_extension(tmp_path: Path, store: SqlStateStore) -> None:
    path = tmp_path / "export.dat"
    path.write_text("ticket_id\tcreated_at\nT1\t2026-11-23 10:00\n", encoding="utf-8")
    assert run(path, store, fmt="csv").imported == 1  # tab-separated is sniffed


def test_column_names_come_from_config(tmp_path: Path, store: SqlStateStore) -> None:
    config = TicketsConfig.model_validate(
        {"columns": {"ticket_id": ["CaseNo"], "created_at": ["OpenedAt"]}}
    )
    path = write_csv(tmp_path / "t.csv", ["caseno,openedat", "C-1,2026-11-23 08:00"])
    report = import_tickets(path, store, config, timezone="UTC")
    assert report.imported == 1
    assert store.list_tickets()[0].created_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_parse_time_formats() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    expected = datetime(2026, 11, 3, 1, 5, tzinfo=UTC)
    for text in ("2026-11-03 09:05", "2026/11/3 9:05", "2026年11月03日 09:05", "2026-11-03T01:05Z"):
        assert parse_time(text, zone) == expected, text
    with pytest.raises(ValueError):
        parse_time("2026-02-30 10:00", zone)


def test_mask_customer_ref_keeps_edges() -> None:
    assert mask_customer_ref("C100234567") == "C1****4567"
    assert mask_customer_ref("13812345678") == "138****5678"
    assert mask_customer_ref("C1234") == "C1234"
