"""Append-only, durable JSONL records for paid work (responses and judgements).

Each record is one line, written and fsync'd as soon as it arrives, so a build killed at any
moment loses at most the call in flight. On opening, a torn last line (a write cut short by the
kill) is cut off; any other unreadable line is corruption and names the file and line. Records
are keyed (e.g. speech, responder, sample); a key is written at most once per build. An exclusive
lock keeps two builds from appending to the same store at once."""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path

from rlhf.data.errors import DataError


class Store:
    def __init__(self, path: str | Path, key_fields: tuple[str, ...]):
        self.path = Path(path)
        self.key_fields = key_fields
        self.records: dict[tuple, dict] = {}
        self.torn_lines = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.path.with_suffix(self.path.suffix + ".lock"), "w")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise DataError(
                str(self.path),
                "another build is writing to this store",
                hint="wait for it to finish or use another run_dir",
            ) from None
        self._load()
        self._handle = open(self.path, "a", encoding="utf-8")

    def key(self, record: dict) -> tuple:
        return tuple(record[f] for f in self.key_fields)

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
        if end < len(data):
            self.torn_lines = 1
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        for number, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                self.records[self.key(record)] = record
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                raise DataError(
                    str(self.path),
                    "unreadable record (the store is corrupted)",
                    line=number,
                    hint="remove that line to redo its call",
                ) from None

    def __contains__(self, key: tuple) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: tuple) -> dict | None:
        return self.records.get(key)

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.records[self.key(record)] = record

    def close(self) -> None:
        self._handle.close()
        fcntl.flock(self._lockfile, fcntl.LOCK_UN)
        self._lockfile.close()
