"""Transitions and daemon events: the JSON event log and the notify hook.

Every event is one flat dict (``time``, ``event``, and fields such as
``virtual``, ``real``, ``weight``, ``reason``).  :class:`EventSink` writes it

* as one JSON line to the event log file (``--event-log``), flushed at once;
* to stdlib logging (``lvscheck.events``, INFO; guard and errors at ERROR);
* to the notify hook, for transitions (a real up or down, a fallback on or off,
  the pool guard): a command (``--notify-command CMD``: run as ``CMD EVENT
  VIRTUAL REAL`` with the event as JSON on stdin and as ``LVSCHECK_*``
  environment variables, never through a shell) and/or mail (ldirectord's
  ``emailalert``/``smtp``/``emailalertfrom``, sent with smtplib in a worker thread
  so the check loop never waits on SMTP).

Mail goes out for real-server transitions only (``down``, ``up``), as
ldirectord's "Quiescent/Deleted/Restored/Added" alerts do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["EventSink", "MailSettings"]

log = logging.getLogger("lvscheck.events")

_MAIL_EVENTS = frozenset({"down", "up"})
#: events that run the notify command: transitions of reals and pools
NOTIFY_EVENTS = frozenset({"down", "up", "fallback-on", "fallback-off", "guard", "guard-cleared"})
_LOUD = frozenset({"guard", "ipvs-error", "reload-failed", "via-vip-blocked"})


class MailSettings:
    """Where alerts for one pool go (ldirectord's emailalert, smtp, emailalertfrom, emailalertstatus)."""

    def __init__(
        self, to: str, smtp: str | None, sender: str | None, status: tuple[str, ...], freq: int = 0
    ) -> None:
        self.to = [a.strip().strip('"') for a in to.split(",") if a.strip()]
        self.smtp = smtp or "localhost"
        self.sender = sender or f"lvscheck@{os.uname().nodename}"
        self.status = status
        self.freq = freq  # emailalertfreq: repeat the "down" mail every freq s while down (0: never)

    def allows(self, daemon_state: str) -> bool:
        if not self.to or "none" in self.status:
            return False
        return "all" in self.status or daemon_state in self.status


class EventSink:
    """Fan events out to the log file, logging, a command and mail."""

    def __init__(self, path: str | None = None, command: str | None = None, smtp: str | None = None) -> None:
        self.path = path
        self.smtp = smtp  # overrides the config's smtp= (HOST[:PORT])
        self.command = command
        self.daemon_state = "starting"
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._tasks: set[asyncio.Future[Any]] = set()
        self.emitted = 0

    def emit(self, event: str, mail: MailSettings | None = None, **fields: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"time": round(time.time(), 3), "event": event, **fields}
        self.emitted += 1
        text = json.dumps(record, separators=(",", ":"), default=str)
        if self._file is not None:
            self._file.write(text + "\n")
            self._file.flush()
        level = logging.ERROR if event in _LOUD else logging.INFO
        log.log(level, "%s", _human(record))
        if self.command and event in NOTIFY_EVENTS:
            self._spawn(self._run_command(text, record))
        if mail is not None and event in _MAIL_EVENTS and mail.allows(self.daemon_state):
            self._spawn(asyncio.to_thread(_send_mail, mail, record, self.smtp))
        return record

    def remind(self, mail: MailSettings, **fields: Any) -> None:
        """ldirectord's ``emailalertfreq`` repeat: the "down" mail again, nothing else."""
        if mail.allows(self.daemon_state):
            record = {"time": round(time.time(), 3), "event": "down", "repeat": True, **fields}
            self._spawn(asyncio.to_thread(_send_mail, mail, record, self.smtp))

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.ensure_future(coro)
        except RuntimeError:  # no running loop (tests, shutdown): drop the side effect
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_command(self, text: str, record: Mapping[str, Any]) -> None:
        assert self.command is not None
        env = dict(os.environ)
        for key, value in record.items():
            env[f"LVSCHECK_{key.upper()}"] = str(value)
        try:
            proc = await asyncio.create_subprocess_exec(
                self.command,
                str(record["event"]),
                str(record.get("virtual", "")),
                str(record.get("real", "")),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
            )
            await asyncio.wait_for(proc.communicate(text.encode() + b"\n"), 30)
        except (OSError, TimeoutError) as exc:
            log.error("notify command %s failed: %s", self.command, exc)
            return
        if proc.returncode:
            log.error("notify command %s exited with %s", self.command, proc.returncode)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (a little) for notify commands and mails still running."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _human(record: Mapping[str, Any]) -> str:
    skip = {"time", "event"}
    rest = " ".join(f"{k}={v}" for k, v in record.items() if k not in skip)
    return f"{record['event']}: {rest}"


def _send_mail(mail: MailSettings, record: Mapping[str, Any], relay: str | None = None) -> None:
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    verb = "Inaccessible real server" if record["event"] == "down" else "Restored real server"
    msg["Subject"] = f"lvscheck: {verb} {record.get('real', '')} ({record.get('virtual', '')})"
    msg["From"] = mail.sender
    msg["To"] = ", ".join(mail.to)
    msg.set_content("\n".join(f"{k}: {v}" for k, v in record.items()) + "\n")
    host, _, port = (relay or mail.smtp).partition(":")
    try:
        with smtplib.SMTP(host, int(port or 25), timeout=10) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("alert mail to %s via %s failed: %s", ", ".join(mail.to), mail.smtp, exc)
