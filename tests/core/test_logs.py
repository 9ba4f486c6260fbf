"""Log lines for the journal: a priority prefix, no timestamp, one line each."""

from __future__ import annotations

import logging
import os
import sys

import pytest

from bmcd.core import logs


def _record(level: int, message: str, exc_info: bool = False) -> logging.LogRecord:
    info = sys.exc_info() if exc_info else None
    return logging.LogRecord("bmcd.test", level, __file__, 1, message, (), info)


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
        (25, 6),
        (5, 7),
    ],
)
def test_priorities(level: int, priority: int) -> None:
    formatter = logs.JournalFormatter("%(name)s: %(message)s")

    line = formatter.format(_record(level, "disk full"))

    assert line == f"<{priority}>bmcd.test: disk full"


def test_traceback_stays_one_line() -> None:
    formatter = logs.JournalFormatter("%(name)s: %(message)s")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        line = formatter.format(_record(logging.ERROR, "two\nlines", exc_info=True))

    assert "\n" not in line
    assert line.startswith("<3>bmcd.test: two | lines | Traceback")
    assert line.endswith("ValueError: bad | value")


def test_under_journald_matches_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert not logs.under_journald()

    stat = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    assert logs.under_journald()

    # Inherited from a parent whose stderr went to the journal: not ours.
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino + 1}")
    assert not logs.under_journald()

    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    assert not logs.under_journald()


def test_setup_under_journald_has_no_timestamps(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stat = os.fstat(sys.stderr.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
    try:
        logs.setup_logging("info")
        logging.getLogger("bmcd.test").warning("Fan %s failed", "fan0")
        logs.set_level("error")
        logging.getLogger("bmcd.test").warning("hidden")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

    assert capfd.readouterr().err == "<4>bmcd.test: Fan fan0 failed\n"


def test_malformed_request_is_one_warning() -> None:
    from aiohttp.http_exceptions import InvalidHeader

    from bmcd.core.logs import MalformedRequestFilter

    try:
        raise InvalidHeader(b"\x00")
    except InvalidHeader:
        import sys

        record = logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("127.0.0.1",),
            sys.exc_info(),
        )
    assert MalformedRequestFilter().filter(record)
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert "Malformed HTTP request" in record.getMessage()
