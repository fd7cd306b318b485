"""Value types of the ``lvscheck`` flags: each refuses a bad value in words an operator understands.

argparse calls them with the text given on the command line and, on
:class:`argparse.ArgumentTypeError`, prints ``argument --FLAG: MESSAGE`` and exits
with the usage status (3).  So a mistake is reported before anything starts,
with the flag's name, instead of as a traceback from deep inside the daemon.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil

__all__ = [
    "UNIX_PATH_MAX",
    "Directory",
    "Executable",
    "ExistingFile",
    "FileToWrite",
    "GroupName",
    "ListenAddress",
    "NonEmpty",
    "Number",
    "RelayAddress",
]

#: Longest path a Unix socket can bind (``sun_path`` is 108 bytes with its NUL).
UNIX_PATH_MAX = 107


class Number:
    """A whole number (``kind=int``) or a decimal one (``kind=float``) within ``low..high``."""

    def __init__(self, kind: type[int] | type[float], low: float, high: float) -> None:
        self.kind = kind
        self.low = kind(low)
        self.high = kind(high)
        self.__name__ = "whole number" if kind is int else "number"  # argparse names the type with it

    def __call__(self, text: str) -> int | float:
        expected = f"expected a {self.__name__} {self.low}..{self.high}"
        try:
            value = self.kind(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {self.__name__}; {expected}") from None
        if math.isnan(value) or not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; {expected}")
        return value


class NonEmpty:
    """Any text but an empty (or all-blank) one."""

    __name__ = "text"

    def __call__(self, text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError("an empty value")
        return text


class FileToWrite(NonEmpty):
    """A file (or Unix socket) the daemon creates: its directory must exist already.

    ``made_by_lvscheck`` is a path whose directory lvscheck creates itself (the
    default control socket under /run); ``socket`` limits the length to what a
    Unix socket can bind; with ``off``, an empty value means no file at all.
    """

    __name__ = "file name"

    def __init__(
        self, *, socket: bool = False, made_by_lvscheck: str | None = None, off: bool = False
    ) -> None:
        self.socket = socket
        self.made_by_lvscheck = made_by_lvscheck
        self.off = off  # an empty value turns the file off

    def __call__(self, text: str) -> str:
        if self.off and text == "":
            return text
        super().__call__(text)
        if self.socket and len(os.fsencode(text)) > UNIX_PATH_MAX:
            raise argparse.ArgumentTypeError(
                f"{text[:40]!r}...: {len(os.fsencode(text))} bytes, a Unix socket path has at most "
                f"{UNIX_PATH_MAX}"
            )
        if text == self.made_by_lvscheck:
            return text
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name in it")
        directory = os.path.dirname(text) or "."
        if not os.path.isdir(directory):
            raise argparse.ArgumentTypeError(f"{text!r}: directory {directory!r} does not exist")
        return text


class Executable(NonEmpty):
    """A program run without a shell: an executable file, by path or found in PATH."""

    __name__ = "program"

    def __call__(self, text: str) -> str:
        super().__call__(text)
        if shutil.which(text) is None:
            where = "is not an executable file" if os.sep in text else "is not an executable found in PATH"
            raise argparse.ArgumentTypeError(f"{text!r} {where} (it is run without a shell)")
        return text


class ListenAddress(NonEmpty):
    """``[HOST:]PORT`` to listen on; normalised to ``HOST:PORT`` (an IPv6 HOST without brackets)."""

    __name__ = "address"

    def __init__(self, default_host: str = "127.0.0.1") -> None:
        self.default_host = default_host

    def __call__(self, text: str) -> str:
        from lvscheck.cli.target import parse_hostport
        from lvscheck.errors import TargetError

        super().__call__(text)
        accepted = "expected [HOST:]PORT, e.g. 9100 or 127.0.0.1:9100 or [::1]:9100"
        host_text, colon, port_text = text.rpartition(":")
        if not colon:
            host_text, port_text = "", text
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise argparse.ArgumentTypeError(
                f"{text!r}: port {port_text!r} is not a number 1..65535; {accepted}"
            )
        host = self.default_host
        if host_text:
            try:
                host, _ = parse_hostport(host_text if not host_text.startswith("[") else host_text + ":1")
            except TargetError:
                raise argparse.ArgumentTypeError(
                    f"{text!r}: {host_text!r} is not a host; {accepted}"
                ) from None
        return f"{host}:{port_text}"


class RelayAddress(NonEmpty):
    """``HOST[:PORT]`` of a server to connect to (the mail relay)."""

    __name__ = "address"

    def __call__(self, text: str) -> str:
        from lvscheck.cli.target import parse_hostport
        from lvscheck.errors import TargetError

        super().__call__(text)
        try:
            parse_hostport(text)
        except TargetError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("target ")) from None
        return text


class LogDestination(NonEmpty):
    """ldirectord's ``logfile``: ``none``, a syslog facility (``local0``, ``daemon``) or an absolute path."""

    __name__ = "log destination"

    def __call__(self, text: str) -> str:
        import logging.handlers

        super().__call__(text)
        if text == "none" or text.strip().lower() in logging.handlers.SysLogHandler.facility_names:
            return text
        if not text.startswith("/"):
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither an absolute path nor a syslog facility (local0..local7, daemon, ...) "
                "nor none"
            )
        return FileToWrite()(text)


class Directory(NonEmpty):
    """A directory lvscheck keeps files in; made on first use if missing, but not a file."""

    __name__ = "directory"

    def __call__(self, text: str) -> str:
        super().__call__(text)
        if os.path.exists(text) and not os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not a directory")
        return text


class ExistingFile(NonEmpty):
    """A file lvscheck reads: it must exist and be a file."""

    __name__ = "file"

    def __call__(self, text: str) -> str:
        super().__call__(text)
        if os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(f"{text!r}: no such file")
        return text


class GroupName(NonEmpty):
    """A group of this system (``/etc/group`` or NSS)."""

    __name__ = "group"

    def __call__(self, text: str) -> str:
        import grp

        super().__call__(text)
        try:
            grp.getgrnam(text)
        except KeyError:
            raise argparse.ArgumentTypeError(f"{text!r}: no such group") from None
        return text


class InterfaceName(NonEmpty):
    """A network interface name as the kernel accepts it: 1..15 characters, no '/', no blanks."""

    __name__ = "interface"

    def __call__(self, text: str) -> str:
        super().__call__(text)
        if len(text) > 15 or "/" in text or any(c.isspace() for c in text) or text in (".", ".."):
            raise argparse.ArgumentTypeError(f"{text!r} is not an interface name (1-15 characters, no '/')")
        return text
