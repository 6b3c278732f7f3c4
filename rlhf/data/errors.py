"""Errors about user input that name the file and line, so a user never gets a bare traceback."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data. The message names the file (and line, where known) and what to do."""

    def __init__(self, path: str, problem: str, line: int | None = None, hint: str = ""):
        where = f"{path}:{line}" if line is not None else str(path)
        message = f"{where}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)
        self.path, self.line, self.problem = str(path), line, problem


def not_utf8_error(path) -> DataError:
    """The error for a file that is not UTF-8, naming its first bad line (a decoder's offsets are
    within its buffer, so the file is decoded line by line)."""
    from pathlib import Path

    for number, raw in enumerate(Path(path).read_bytes().split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return DataError(str(path), "not UTF-8 text", line=number, hint="re-encode the file as UTF-8")
    return DataError(str(path), "not UTF-8 text", hint="re-encode the file as UTF-8")
