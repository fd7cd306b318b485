"""The kernel's IPVS connection synchronisation daemons (``ipvsadm --start-daemon``), over netlink.

A *master* sync daemon multicasts the state of the connections its director
handles; a *backup* daemon on the standby director receives it and keeps those
connections in its own table, so that established connections survive a
failover.  The kernel runs at most one master and one backup per network
namespace; both may run at once.

Requests (generic netlink family ``IPVS``): ``IPVS_CMD_NEW_DAEMON`` starts,
``IPVS_CMD_DEL_DAEMON`` stops, ``IPVS_CMD_GET_DAEMON`` (a dump) lists.  The
messages are a few fixed-size attributes, encoded here with :mod:`struct`
(the framing is :mod:`~lvscheck.adapters.ipvs.genl`): no pyroute2, so
``lvscheck sync-daemon`` starts as fast as Python does (it runs on a cluster's
failover path, from the OCF agent).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from lvscheck.adapters.ipvs.genl import (
    GENLHDR,
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_DUMP,
    GenlSocket,
    KernelRefused,
    attrs,
    nla,
)
from lvscheck.errors import AdapterError

__all__ = ["STATES", "SyncDaemon", "SyncDaemons"]

IPVS_GENL_VERSION = 1
IPVS_CMD_NEW_DAEMON = 9
IPVS_CMD_DEL_DAEMON = 10
IPVS_CMD_GET_DAEMON = 11
IPVS_CMD_ATTR_DAEMON = 3
IPVS_DAEMON_ATTR_STATE = 1
IPVS_DAEMON_ATTR_MCAST_IFN = 2
IPVS_DAEMON_ATTR_SYNC_ID = 3

#: the kernel's IP_VS_STATE_MASTER / IP_VS_STATE_BACKUP
STATES = {"master": 1, "backup": 2}
_IFNAMSIZ = 16


@dataclass(frozen=True, slots=True)
class SyncDaemon:
    """One running sync daemon, as the kernel reports it."""

    state: str  # master | backup
    interface: str
    syncid: int

    def __str__(self) -> str:
        return f"{self.state} on {self.interface} syncid {self.syncid}"


def daemon_attrs(state: str, interface: str | None = None, syncid: int | None = None) -> bytes:
    """The nested ``IPVS_CMD_ATTR_DAEMON`` of a request (what ``ipvsadm --start-daemon`` sends)."""
    inner = nla(IPVS_DAEMON_ATTR_STATE, struct.pack("=I", STATES[state]))
    if interface is not None:
        inner += nla(IPVS_DAEMON_ATTR_MCAST_IFN, interface.encode() + b"\0")
    if syncid is not None:
        inner += nla(IPVS_DAEMON_ATTR_SYNC_ID, struct.pack("=I", syncid))
    return nla(IPVS_CMD_ATTR_DAEMON | NLA_F_NESTED, inner)


def decode_daemon(payload: bytes) -> SyncDaemon | None:
    """A :class:`SyncDaemon` from one answer of the dump (generic header + attributes)."""
    nested = attrs(payload, GENLHDR.size).get(IPVS_CMD_ATTR_DAEMON)
    if nested is None:
        return None
    a = attrs(nested)
    raw_state = a.get(IPVS_DAEMON_ATTR_STATE, b"")
    state_id = struct.unpack_from("=I", raw_state)[0] if len(raw_state) >= 4 else 0
    names = {v: k for k, v in STATES.items()}
    raw_id = a.get(IPVS_DAEMON_ATTR_SYNC_ID, b"")
    return SyncDaemon(
        state=names.get(state_id, str(state_id)),
        interface=a.get(IPVS_DAEMON_ATTR_MCAST_IFN, b"").split(b"\0", 1)[0].decode(errors="replace"),
        syncid=struct.unpack_from("=I", raw_id)[0] if len(raw_id) >= 4 else 0,
    )


def check_arguments(state: str, interface: str, syncid: int) -> None:
    """Refuse what the kernel would refuse, with a message that says which value is wrong."""
    if state not in STATES:
        raise AdapterError(f"sync daemon state {state!r}: master or backup")
    if not interface or len(interface.encode()) >= _IFNAMSIZ or "/" in interface or " " in interface:
        raise AdapterError(f"sync daemon interface {interface!r}: a network interface name (eth0)")
    if not 0 <= syncid <= 255:
        raise AdapterError(f"sync daemon syncid {syncid}: 0..255 (0: a backup accepts every id)")


class SyncDaemons:
    """Start, stop and list the sync daemons of this network namespace's IPVS."""

    def __init__(self, timeout: float = 15.0) -> None:
        self._genl = GenlSocket(timeout)
        try:
            self.family = self._genl.family("IPVS")
        except BaseException:
            self._genl.close()
            raise

    def __enter__(self) -> SyncDaemons:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._genl.close()

    # -- public API ---------------------------------------------------------------------------

    def running(self) -> list[SyncDaemon]:
        """The sync daemons running now (none, a master, a backup, or both)."""
        answers = self._request(IPVS_CMD_GET_DAEMON, b"", NLM_F_DUMP, "listing the sync daemons")
        return [d for d in map(decode_daemon, answers) if d is not None]

    def start(self, state: str, interface: str, syncid: int = 0) -> bool:
        """Start the ``state`` daemon; False when the same one already runs (nothing to do).

        A daemon of that state running with another interface or syncid is an error: the
        operator decides whether to stop it.
        """
        check_arguments(state, interface, syncid)
        what = f"starting the {state} sync daemon on {interface} (syncid {syncid})"
        try:
            self._request(IPVS_CMD_NEW_DAEMON, daemon_attrs(state, interface, syncid), NLM_F_ACK, what)
        except KernelRefused as exc:
            if exc.errno == errno.EEXIST:
                running = self.get(state)
                if running is not None and (running.interface, running.syncid) == (interface, syncid):
                    return False
                now = f"on {running.interface} with syncid {running.syncid}" if running else "already"
                raise AdapterError(f"{what}: the {state} sync daemon runs {now}; stop it first") from exc
            if exc.errno == errno.ENODEV:
                raise AdapterError(f"{what}: no network interface {interface!r} here") from exc
            raise AdapterError(f"{what}: {exc.strerror}") from exc
        return True

    def stop(self, state: str) -> bool:
        """Stop the ``state`` daemon; False when none was running."""
        if state not in STATES:
            raise AdapterError(f"sync daemon state {state!r}: master or backup")
        what = f"stopping the {state} sync daemon"
        try:
            self._request(IPVS_CMD_DEL_DAEMON, daemon_attrs(state), NLM_F_ACK, what)
        except KernelRefused as exc:
            if exc.errno == errno.ESRCH:
                return False
            raise AdapterError(f"{what}: {exc.strerror}") from exc
        return True

    def get(self, state: str) -> SyncDaemon | None:
        return next((d for d in self.running() if d.state == state), None)

    # -- netlink ------------------------------------------------------------------------------

    def _request(self, cmd: int, attributes: bytes, flags: int, what: str) -> list[bytes]:
        try:
            return self._genl.call(self.family, cmd, IPVS_GENL_VERSION, attributes, flags)
        except KernelRefused:
            raise
        except OSError as exc:
            raise AdapterError(f"{what}: IPVS netlink: {exc.strerror or exc}") from exc
