"""Read client speeches from CSV, JSONL or Parquet through a column mapping, and clean them as the
paper does: drop speeches shorter or longer than the configured bounds, then drop duplicates after
normalising whitespace and case. Every problem with the file names the file and line."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rlhf.data.errors import DataError, not_utf8_error
from rlhf.data.records import Speech

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class CleanCounts:
    """How many rows each filter removed, in the order the filters run."""

    rows_read: int = 0
    empty: int = 0
    too_short: int = 0
    too_long: int = 0
    duplicates: int = 0
    kept: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def removed_all(self, path, min_chars: int, max_chars: int, section: str) -> DataError:
        """The error for a cleaning that kept nothing: which filter removed the speeches, and the
        setting that controls it."""
        filters = [
            (self.empty, "empty (no text in the mapped columns)", f"{section}.columns.text"),
            (self.too_short, f"under {min_chars} characters", f"{section}.min_chars"),
            (self.too_long, f"over {max_chars} characters", f"{section}.max_chars"),
            (self.duplicates, "duplicates", None),
        ]
        removed = [(n, what, key) for n, what, key in filters if n]
        detail = ", ".join(f"{n} {what}" for n, what, _ in removed)
        biggest = max(removed, key=lambda r: r[0]) if removed else None
        hint = (
            f"most were removed as {biggest[1]}: check {biggest[2]}"
            if biggest and biggest[2]
            else "check the file and the column mapping"
        )
        return DataError(str(path), f"cleaning kept none of the {self.rows_read} speeches ({detail})", hint=hint)


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in set(FORMATS.values()):
            raise DataError(
                str(path), f"unknown format {fmt!r}", hint="prefs.speeches.format: auto, csv, jsonl or parquet"
            )
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataError(
            str(path),
            f"cannot tell the format from the suffix {path.suffix!r}",
            hint="set prefs.speeches.format to csv, jsonl or parquet",
        ) from None


def _value(row: dict, column: str | None) -> str:
    if column is None:
        return ""
    value = row.get(column)
    return "" if value is None else str(value)


def _speech(row: dict, columns, index: int) -> tuple[str, str, str]:
    """(id, text, topic) of one row; the title, when mapped, heads the text."""
    title, body = _value(row, columns.title).strip(), " ".join(_value(row, columns.text).split())
    text = f"{title}\n\n{body}" if title and body and not body.startswith(title) else (body or title)
    speech_id = _value(row, columns.id).strip() or f"row-{index}"
    return speech_id, text, _value(row, columns.topic).strip()


def _required(columns) -> list[str]:
    return [c for c in (columns.text, columns.title, columns.id, columns.topic) if c]


def _check_columns(path: Path, present, columns, line: int | None) -> None:
    missing = [c for c in _required(columns) if c not in present]
    if missing:
        raise DataError(
            str(path),
            f"missing column(s) {missing}",
            line=line,
            hint=f"the file has {sorted(present)}; map yours with prefs.speeches.columns",
        )


def _read_csv(path: Path, columns) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as handle:  # -sig: tolerate a byte-order mark
        reader = csv.DictReader(handle, strict=True)
        last = 0
        try:
            header = reader.fieldnames
            if not header:
                raise DataError(str(path), "empty file (no header row)", line=1)
            _check_columns(path, header, columns, line=1)
            last = reader.line_num  # where the previous record ended; a broken one starts on the next line
            for row in reader:
                if None in row or any(v is None for v in row.values()):
                    raise DataError(
                        str(path),
                        f"broken row: expected {len(header)} fields",
                        line=last + 1,
                        hint="check quoting and the number of commas on this line",
                    )
                rows.append((last + 1, row))
                last = reader.line_num
        except csv.Error as err:
            raise DataError(str(path), f"broken CSV ({err})", line=last + 1) from None
    return rows


def _read_jsonl(path: Path, columns) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(str(path), f"broken JSON line ({err.msg} at column {err.colno})", line=number) from None
            if not isinstance(row, dict):
                raise DataError(str(path), "a line is not a JSON object", line=number)
            _check_columns(path, row.keys(), columns, line=number)
            rows.append((number, row))
    return rows


def _read_parquet(path: Path, columns) -> list[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a broken file
        raise DataError(str(path), f"not a readable Parquet file ({err})") from None
    _check_columns(path, table.column_names, columns, line=None)
    # Parquet has no lines: "line" is the 1-based row number.
    return [(index + 1, row) for index, row in enumerate(table.select(_required(columns)).to_pylist())]


def read_speeches(path: str | Path, columns, fmt: str = "auto") -> list[tuple[int, Speech]]:
    """Every row as (line, Speech), in file order; texts have whitespace runs collapsed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found", hint="set prefs.speeches.path")
    if not columns.text:
        raise DataError(str(path), "no text column mapped", hint="set prefs.speeches.columns.text")
    fmt = detect_format(path, fmt)
    if path.stat().st_size == 0:
        raise DataError(str(path), "empty file", line=1)
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[fmt]
    try:
        rows = reader(path, columns)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    if not rows:
        raise DataError(str(path), "no rows", hint="the file has a header or schema but no speeches")
    return [(line, Speech(*_speech(row, columns, line))) for line, row in rows]


def normalise(text: str) -> str:
    """The duplicate key: whitespace runs collapsed, case folded."""
    return " ".join(text.split()).casefold()


def clean(rows: list[tuple[int, Speech]], min_chars: int, max_chars: int) -> tuple[list[Speech], CleanCounts]:
    """Length bounds (inclusive, in characters), then duplicates (first occurrence kept).
    Speech ids must be unique among the kept speeches: they key the durable store."""
    counts = CleanCounts(rows_read=len(rows))
    kept: list[Speech] = []
    seen: set[str] = set()
    ids: dict[str, int] = {}
    for line, speech in rows:
        length = len(speech.text)
        if length == 0:
            counts.empty += 1
        elif length < min_chars:
            counts.too_short += 1
        elif length > max_chars:
            counts.too_long += 1
        elif normalise(speech.text) in seen:
            counts.duplicates += 1
        else:
            seen.add(normalise(speech.text))
            if speech.id in ids:
                speech = Speech(f"{speech.id}-L{line}", speech.text, speech.topic)
            ids[speech.id] = line
            kept.append(speech)
    counts.kept = len(kept)
    return kept, counts
