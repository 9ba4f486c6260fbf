"""Logging set-up: journald-friendly under systemd, timestamps elsewhere.

Under systemd, stderr goes to the journal, which adds its own timestamps and
reads a ``<N>`` syslog priority from the start of each line. Each record is
then exactly one line, tracebacks included, so that one event is one journal
entry with the right priority.
"""

from __future__ import annotations

import logging
import os
import sys

from aiohttp.http_exceptions import HttpProcessingError

# syslog(3) priorities: 2 crit, 3 err, 4 warning, 6 info, 7 debug.
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)


def syslog_priority(levelno: int) -> int:
    """The syslog priority for a logging level (custom levels round down)."""
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return 7


class JournalFormatter(logging.Formatter):
    """One line per record, prefixed with its syslog priority, no timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).rstrip()
        # A multi-line message or traceback stays one journal entry.
        text = " | ".join(text.splitlines())
        return f"<{syslog_priority(record.levelno)}>{text}"


def under_journald() -> bool:
    """Whether stderr is connected to the systemd journal."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        device, inode = (int(part) for part in stream.split(":"))
        stat = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class MalformedRequestFilter(logging.Filter):
    """Turns aiohttp's traceback for an unparsable request into one warning.

    A request that is not valid HTTP is the client's mistake: aiohttp already
    answered 400, so the operator needs one line, not an error and a stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            reason = str(error.message).splitlines()[0] if error.message else ""
            record.msg = "Malformed HTTP request refused (400): %s"
            record.args = (reason or type(error).__name__,)
            record.exc_info = None
            record.exc_text = None
        return True


def setup_logging(level: str) -> None:
    """Configure the root logger for the daemon or a command."""
    handler = logging.StreamHandler(sys.stderr)
    if under_journald():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # aiohttp's access log would add a line per request; bmcd logs what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter())


def set_level(level: str) -> None:
    """Change the level of bmcd's logging (``debug``, ``info``, ...)."""
    logging.getLogger().setLevel(level.upper())
