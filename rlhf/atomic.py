"""Write a file or a directory under a temporary name, then rename it into place: a crash at any
moment leaves the old version or the new one, never a half-written one that looks complete."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes the file's content to `tmp`; then it replaces `path`."""
    path = Path(path)
    tmp = _tmp(path)
    write(tmp)
    os.replace(tmp, path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str))


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    return write_text(path, "".join(json.dumps(record) + "\n" for record in records))


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished directory into place, removing an older one of the same name."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextmanager
def directory(final: str | Path) -> Iterator[Path]:
    """Yields an empty temporary directory beside `final` (its parent created); when the block
    completes, the temporary directory replaces `final`. A block that raises leaves `final` alone."""
    final = Path(final)
    tmp = _tmp(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    yield tmp
    replace_dir(tmp, final)
