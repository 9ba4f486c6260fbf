"""Logging set-up: journald-friendly under systemd, timestamps elsewhere."""

from __future__ import annotations

import logging
import os
import sys

# syslog priorities that journald reads from a "<N>" line prefix.
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4,
               logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """One line per record, prefixed with its syslog priority, no timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")
        priority = _PRIORITIES.get(record.levelno, 6)
        return f"<{priority}>{text}"


def under_journald() -> bool:
    """Whether stderr is connected to the systemd journal."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        device, inode = (int(part) for part in stream.split(":"))
    except ValueError:
        return False
    stat = os.fstat(sys.stderr.fileno())
    return (stat.st_dev, stat.st_ino) == (device, inode)


def setup_logging(level: str) -> None:
    """Configure the root logger for the daemon or a command."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journald():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would add a line per request; bmcd logs what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
