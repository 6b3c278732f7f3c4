"""Preference pairs as Parquet in the PsychoCounsel-Preference schema: written by the preference
builder (exactly the released columns and types), read by the reward, offline DPO and eval stages
(the released dataset's files and ours alike): question, chosen, rejected, plus optional columns
(ID, prefID, chosen_model, ..., per-principle ratings) that training does not need."""

from __future__ import annotations

from pathlib import Path

from rlhf import atomic
from rlhf.data.errors import DataError
from rlhf.data.records import PreferencePair, Speech
from rlhf.prefs.judge import PRINCIPLES

REQUIRED = ("question", "chosen", "rejected")
COLUMNS = (
    ["ID", "prefID", "question", "chosen", "rejected", "chosen_model", "rejected_model"]
    + [f"chosen_{p}_rating" for p in PRINCIPLES]
    + [f"rejected_{p}_rating" for p in PRINCIPLES]
)


def read_preference_parquet(path: str | Path) -> list[PreferencePair]:
    """The pairs of a PsychoCounsel-Preference Parquet file; a file that is not one gives a DataError
    naming the file and the column or row (counted from 0, as pandas and pyarrow count) at fault."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "file not found", hint="set data.preference_path to a Parquet file")
    if path.stat().st_size == 0:
        raise DataError(str(path), "empty file", hint="expected Parquet in the PsychoCounsel-Preference schema")
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a broken file
        raise DataError(str(path), f"not a readable Parquet file ({err})") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise DataError(
            str(path), f"missing column(s) {missing}", hint=f"the PsychoCounsel-Preference schema has {list(REQUIRED)}"
        )
    for column in REQUIRED:
        kind = table.schema.field(column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise DataError(
                str(path), f"column {column!r} holds {kind}, not text", hint="the schema's columns are strings"
            )
    if table.num_rows == 0:
        raise DataError(str(path), "no rows", hint="the file has the columns but no preference pairs")
    pairs = []
    for index, row in enumerate(table.select([c for c in ("ID", *REQUIRED) if c in table.column_names]).to_pylist()):
        for column in REQUIRED:
            if not isinstance(row[column], str) or not row[column].strip():
                named = f" (ID {row['ID']!r})" if row.get("ID") is not None else ""
                raise DataError(str(path), f"row {index}{named}: column {column!r} is empty")
        speech_id = str(row.get("ID") or f"row-{index}")
        pairs.append(PreferencePair(Speech(speech_id, row["question"]), row["chosen"], row["rejected"]))
    return pairs


def write_parquet(rows: list[dict], path: Path) -> None:
    """Exactly the released columns and types (strings; int64 prefID and ratings), via a rename."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.int64() if c == "prefID" or c.endswith("_rating") else pa.string()) for c in COLUMNS])
    table = pa.Table.from_pylist([{c: row[c] for c in COLUMNS} for row in rows], schema=schema)
    atomic.write_with(path, lambda tmp: pq.write_table(table, tmp))
