"""The running daemon's control socket, and its HTTP listener (:mod:`lvscheck.web`).

* Control: a unix stream socket (``--control``), mode 0600 owned by root, or 0660
  with ``--control-group GROUP``; the daemon also checks each client's credentials
  (SO_PEERCRED: root, the daemon's own user, or a member of the group).  A client
  writes one line and reads one JSON document: ``status``, ``ready``, ``reload``, or a JSON
  action (``{"action": "drain", ...}``, see :mod:`lvscheck.daemon.actions`);
  ``lvscheck status``/``drain``/``undrain``/``maintenance`` are that client.  ``ready``
  answers ``{"ready": true|false, "undecided": N, "reloads": N}``: true once every real has been decided
  by a check and that table is written (the OCF agent's monitor asks it).
* HTTP: the status page, ``/status.json``, ``/metrics`` (:mod:`lvscheck.web.server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, Any

from lvscheck.daemon.operate import ActionError, perform
from lvscheck.daemon.statusrows import rows_of

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director
    from lvscheck.web.server import HttpListener

__all__ = ["peer_allowed", "query", "serve_control", "serve_metrics"]

log = logging.getLogger("lvscheck.daemon")


def _peer(writer: asyncio.StreamWriter) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _groups_of(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def peer_allowed(pid: int, uid: int, gid: int, group: int | None) -> bool:
    """Root, the daemon's own user, or (with a control group) a member of it."""
    if uid in (0, os.geteuid()):
        return True
    return group is not None and (gid == group or group in _groups_of(pid))


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


async def serve_control(director: Director, path: str, group: int | None = None) -> asyncio.Server:
    """Listen on ``path`` (0600; 0660 and chgrp ``group`` when given)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            pid, uid, gid = _peer(writer)
            line = (await asyncio.wait_for(reader.readline(), 5)).decode(errors="replace").strip()
            answer: dict[str, Any]
            parts: list[bytes] | None = None
            if not peer_allowed(pid, uid, gid, group):
                log.warning(
                    "control socket: refused uid %d (pid %d): not root nor in the control group", uid, pid
                )
                answer = {"error": "permission denied: root or the control group only"}
            elif line == "status":  # joined from rows kept per real: the loop is never held long
                parts = await rows_of(director).document_parts()
            elif line == "ready":  # cheap: cluster agents poll it while the first checks run
                undecided = sum(r.track.phase.value == "unknown" for r in director.reals.values())
                answer = {
                    "ready": director.table_ready.is_set(),
                    "undecided": undecided,
                    "reloads": director.counters.reloads,  # cheap to poll, unlike status (bench/)
                }
            elif line == "reload":
                ok = await director.reload("control socket")
                last = director.counters.last_reload or {}
                answer = {
                    "reloaded": ok,
                    "config": director.config_path,
                    "problems": last.get("problems", []),
                }
            elif line.startswith("{"):
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ActionError("a JSON object, please")
                    answer = perform(director, request, f"{_user_name(uid)} (uid {uid}, pid {pid})")
                    rows_of(director).look_everywhere()  # (maintenance of a real already down)
                except (ActionError, ValueError) as exc:
                    answer = {"error": str(exc)}
            else:
                answer = {"error": f"unknown request {line!r}: status, ready, reload or a JSON action"}
            if parts is None:
                parts = [json.dumps(answer, default=str).encode()]
            for part in parts:  # one virtual at a time: megabytes never copied in one go
                writer.write(part)
                await writer.drain()
            writer.write(b"\n")
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    rows_of(director)  # (its hook on the kernel view's writes is in place before any request)
    old = os.umask(0o077)
    try:
        server = await asyncio.start_unix_server(handle, path, limit=1 << 16)
    finally:
        os.umask(old)
    if group is not None:
        os.chown(path, -1, group)
    os.chmod(path, 0o600 if group is None else 0o660)
    return server


async def serve_metrics(director: Director, host: str, port: int, tokens: Any = None) -> HttpListener:
    """The HTTP listener: status page, /status.json, /metrics (:mod:`lvscheck.web.server`)."""
    from lvscheck.web.server import serve_http

    return await serve_http(director, host, port, tokens)


def query(path: str, request: str = "status", timeout: float = 10.0) -> dict[str, Any]:
    """Ask the daemon on ``path``; raises OSError when nothing answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request.encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            chunks.append(data)
    answer: dict[str, Any] = json.loads(b"".join(chunks))
    return answer
