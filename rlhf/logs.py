"""Logging and progress bars.

Every module logs through `logging.getLogger(__name__)`. Under `python -m rlhf.launch`, Hydra's
job logging (conf/config.yaml, `hydra.job_logging`) sends records to the console through
`ConsoleHandler` and, with time, logger and level, to `<run_dir>/launch.log`. Used as a library
(tests, the benchmark), `setup` gives the `rlhf` loggers the same console handler.

The console shows messages only: INFO on stdout, warnings and errors on stderr, written through
tqdm so that a line never cuts through a progress bar. Libraries that log per request or per step
(httpx logs every judge call at INFO) stay at WARNING unless `tracking.verbose_actors` is set.
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

# Loggers of the libraries underneath: quiet at the console unless tracking.verbose_actors.
THIRD_PARTY = (
    "httpx",
    "httpcore",
    "openai",
    "urllib3",
    "requests",
    "vllm",
    "ray",
    "deepspeed",
    "DeepSpeed",
    "torch",
    "transformers",
    "accelerate",
    "filelock",
    "wandb",
    "asyncio",
    "uvicorn",
    "fastapi",
    "matplotlib",
    "PIL",
    "numexpr",
)


class ConsoleHandler(logging.Handler):
    """Messages to the terminal above any progress bar: INFO to stdout, WARNING and up to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            tqdm.write(self.format(record), file=stream)
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def quiet_third_party(verbose: bool = False) -> None:
    level = logging.INFO if verbose else logging.WARNING
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(level)


def setup(verbose: bool = False) -> None:
    """Console logging for the project's loggers when nothing configured it (Hydra does, for
    `python -m rlhf.launch`), and quiet third-party loggers. Safe to call more than once."""
    quiet_third_party(verbose)
    project = logging.getLogger("rlhf")
    configured = [
        h for logger in (logging.getLogger(), project) for h in logger.handlers if isinstance(h, ConsoleHandler)
    ]
    if not configured:
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        project.addHandler(handler)
    if project.getEffectiveLevel() > logging.INFO:
        project.setLevel(logging.INFO)


def progress(total: int | None, desc: str, unit: str = "it", **kwargs) -> tqdm:
    """A progress bar for a long phase (counts, rate, time left), on stderr beside the log."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5, **kwargs)
