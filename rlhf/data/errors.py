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
