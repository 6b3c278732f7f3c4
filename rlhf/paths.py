"""Where the project's own files are, and how a relative path from the config is found.

The Hydra configs (rlhf/conf), the counsel-chat sample (rlhf/data/counsel-chat), the judge prompts
and the safety probes ship inside the package, so an installed copy finds them from any directory.
In a checkout, rlhf/conf and rlhf/data/counsel-chat link to the top-level conf/ and data/.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CONF_DIR = PACKAGE_DIR / "conf"


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), or None when installed."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "conf").is_dir() else None


def resolve_path(path: str | Path) -> Path:
    """A path read from the config. Absolute, or relative to the current directory when it exists
    there; otherwise relative to the checkout and then to the package, where the shipped files are
    (`data/counsel-chat/counsel_chat.csv` is found from any directory). A path found nowhere is
    returned relative to the current directory, so errors name it as the user wrote it."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in (checkout_root(), PACKAGE_DIR):
        if base is not None and (base / candidate).exists():
            return base / candidate
    return candidate


def work_dir(path: str | Path) -> Path:
    """A place to write caches (converted models, compiled extensions): relative paths are taken
    from the checkout when running from one, else from the current directory."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    return (checkout_root() or Path.cwd()) / candidate
