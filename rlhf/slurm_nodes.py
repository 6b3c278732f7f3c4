"""Expand a SLURM host list (SLURM_JOB_NODELIST) into host names, like `scontrol show hostnames`.

Forms: `node1`, `gpu[01-03,07]` (ranges keep their zero padding), `a[001-003]b` (text after the
brackets), `rack[1-2]-n[1-2]` (several bracket groups: every combination, the last varying fastest),
and comma-separated lists of these: `gpu[01-03,07],cpu5`, `n[1,3-4],m[09-10]`.

    python -m rlhf.slurm_nodes "gpu[01-03,07],cpu5"     # one host per line
    python -m rlhf.slurm_nodes                          # expands $SLURM_JOB_NODELIST
"""

from __future__ import annotations

import itertools
import os
import sys


class NodeListError(ValueError):
    pass


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
            if depth > 1:
                raise NodeListError(f"nested '[' at position {i} in {text!r}")
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise NodeListError(f"']' without '[' at position {i} in {text!r}")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise NodeListError(f"'[' without ']' in {text!r}")
    parts.append(text[start:])
    return parts


def _expand_range(spec: str, whole: str) -> list[str]:
    """`01-03,07` -> ['01', '02', '03', '07']."""
    values = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise NodeListError(f"empty range item in [{spec}] of {whole!r}")
        low, sep, high = item.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise NodeListError(f"bad range {item!r} in {whole!r}: expected N or N-M with digits")
        if not sep:
            values.append(low)
            continue
        start, end = int(low), int(high)
        if end < start:
            raise NodeListError(f"range {item!r} in {whole!r} goes backwards")
        width = len(low)  # SLURM pads to the width of the range's first number
        values += [str(n).zfill(width) for n in range(start, end + 1)]
    return values


def _expand_host(pattern: str, whole: str) -> list[str]:
    pieces: list[list[str]] = []
    rest = pattern
    while "[" in rest:
        head, _, tail = rest.partition("[")
        spec, close, rest = tail.partition("]")
        if not close:
            raise NodeListError(f"'[' without ']' in {whole!r}")
        pieces += [[head], _expand_range(spec, whole)]
    pieces.append([rest])
    return ["".join(combo) for combo in itertools.product(*pieces)]


def expand(nodelist: str) -> list[str]:
    """Host names in SLURM's order (duplicates kept, as scontrol does)."""
    text = nodelist.strip()
    if not text:
        raise NodeListError("empty node list")
    hosts = []
    for part in _split_top_level(text):
        part = part.strip()
        if not part:
            raise NodeListError(f"empty entry in node list {nodelist!r}")
        hosts += _expand_host(part, nodelist)
    return hosts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    nodelist = args[0] if args else os.environ.get("SLURM_JOB_NODELIST", "")
    if not nodelist:
        print("error: give a node list or set SLURM_JOB_NODELIST", file=sys.stderr)
        return 2
    try:
        hosts = expand(nodelist)
    except NodeListError as err:
        print(f"error: cannot parse node list: {err}", file=sys.stderr)
        return 2
    print("\n".join(hosts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
