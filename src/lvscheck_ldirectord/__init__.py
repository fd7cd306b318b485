"""``lvscheck-ldirectord VIP VPORT RIP RPORT``: lvscheck's checks as ldirectord's checkcommand.

ldirectord (``checktype=external``) execs this once per real server per
interval, with exactly four arguments and no shell, kills it with SIGTERM
after ``checktimeout`` and reads only the exit status (0 up, else down).

Start-up time is the whole cost of such a command, so this module is kept
outside the ``lvscheck`` package (importing that would import asyncio, the
engine and the plugin framework) and imports nothing but builtins:

1. find the ldirectord.cf of the ldirectord that started us (:func:`find_config`);
2. ask the *check server* over a Unix socket to run the check: a process of
   this same program that keeps lvscheck imported, the config parsed and the
   checks prepared, and exits after some idle minutes (``lvscheck.adapters.ldirectord``);
3. if there is no server (the first call, or ``LVSCHECK_LDIRECTORD_SERVER=0``),
   start one for the next calls and run the check in this process.

Exit status 0 up, 1 down (or any problem); nothing is printed on success, one
line on stderr otherwise.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "DEFAULT_CONFIGS",
    "find_config",
    "main",
    "parse_ldirectord_argv",
    "process_started",
    "socket_dir",
]

#: ldirectord's own lookup: a name is tried in /etc/ha.d, then /etc/ha.d/conf, then as a path.
DEFAULT_CONFIGS = ("/etc/ha.d/ldirectord.cf", "/etc/ha.d/conf/ldirectord.cf")
PROTOCOL = "lvscheck-ldirectord/1"
#: Seconds: a process older than this when :func:`main` runs was not just started by ldirectord.
MAX_START_AGE = 30.0


def parse_ldirectord_argv(argv: list[str]) -> str | None:
    """The config named by an ldirectord command line, or ``None`` if it is not ldirectord's.

    ``argv`` is the full command line (``/usr/bin/perl -w /usr/sbin/ldirectord -d
    my.cf start``).  ldirectord's usage is ``ldirectord [-d] [configfile]
    start|stop|...``; with only the command, the config is ``ldirectord.cf``.
    The name is returned as written (see :func:`resolve_config_name`).
    """
    for i, word in enumerate(argv):
        if os.path.basename(word) == "ldirectord":
            rest = argv[i + 1 :]
            break
    else:
        return None
    positional = [w for w in rest if not w.startswith("-")]
    commands = ("start", "stop", "status", "restart", "try-restart", "reload", "force-reload")
    if len(positional) >= 2:
        return positional[0]
    if len(positional) == 1 and positional[0] in commands:
        return "ldirectord.cf"
    return None


def resolve_config_name(name: str, cwd: str | None) -> str | None:
    """ldirectord's lookup of a config name: /etc/ha.d/NAME, /etc/ha.d/conf/NAME, then the path."""
    candidates = [f"/etc/ha.d/{name}", f"/etc/ha.d/conf/{name}"]
    if os.path.isabs(name):
        candidates.append(name)
    else:
        if cwd:
            candidates.append(os.path.join(cwd, name))
        candidates.append(os.path.abspath(name))
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def _proc_argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return [w.decode("utf-8", "surrogateescape") for w in data.split(b"\0") if w]


def _proc_ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data.rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def find_config() -> str | None:
    """The config of the ldirectord that started us, else $LVSCHECK_LDIRECTORD_CONFIG, else the defaults.

    The parent's command line names it; with ``fork=yes`` the parent is a
    child of ldirectord renamed ``ldirectord tcp:VIP:PORT``, so up to three
    ancestors are looked at.
    """
    pid = os.getppid()
    for _ in range(3):
        if pid <= 1:
            break
        name = parse_ldirectord_argv(_proc_argv(pid))
        if name is not None:
            try:
                cwd: str | None = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = None
            path = resolve_config_name(name, cwd)
            if path is not None:
                return path
        pid = _proc_ppid(pid)
    env = os.environ.get("LVSCHECK_LDIRECTORD_CONFIG")
    if env:
        return env
    for path in DEFAULT_CONFIGS:
        if os.path.isfile(path):
            return path
    return None


def socket_dir() -> str | None:
    """A private directory for the check server's socket, or ``None`` (then no server is used)."""
    if os.environ.get("LVSCHECK_LDIRECTORD_SERVER", "1") in ("0", "no", "off"):
        return None
    uid = os.geteuid()
    explicit = os.environ.get("LVSCHECK_LDIRECTORD_RUNDIR")
    if explicit:
        candidates = [explicit]
    elif uid == 0:
        candidates = ["/run/lvscheck"]
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        # /tmp is safe here: the directory is used only if we own it and nobody else may enter it
        candidates = ([f"{runtime}/lvscheck"] if runtime else []) + [f"/tmp/lvscheck-{uid}"]  # noqa: S108
    for path in candidates:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            continue
        try:
            st = os.lstat(path)
        except OSError:
            continue
        # ours, a real directory, nobody else can write or enter it
        if st.st_uid == uid and (st.st_mode & 0o170000) == 0o040000 and not st.st_mode & 0o077:
            return path
    return None


def _ask_server(sockdir: str, config: str, args: list[str], started: float) -> tuple[int, str] | None:
    """Have the server run the check: ``(exit status, reason)``, or ``None`` if there is no server."""
    import _socket

    line = "\t".join((PROTOCOL, config, *args, repr(started)))
    if "\n" in line or line.count("\t") != 6:
        return None
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.settimeout(0.5)
        s.connect(f"{sockdir}/server.sock")
        s.settimeout(None)  # the server answers within the deadline; ldirectord's SIGTERM bounds us
        s.sendall(line.encode("utf-8", "surrogateescape") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                return None
            data += chunk
    except OSError:
        return None
    finally:
        s.close()
    code, _, reason = data.decode("utf-8", "replace").rstrip("\n").partition("\t")
    if code not in ("0", "1"):
        return None
    return int(code), reason


def _spawn_server(sockdir: str) -> None:
    """Start a detached check server (double fork, new session, stdio on /dev/null)."""
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        os.waitpid(pid, 0)
        return
    try:  # first child
        os.setsid()
        if os.fork():
            os._exit(0)
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        os.execv(  # noqa: S606 - no shell wanted: our own interpreter and module
            sys.executable,
            [sys.executable, "-m", "lvscheck.adapters.ldirectord", "--serve", sockdir],
        )
    finally:
        os._exit(1)


def process_started() -> float:
    """When this process was forked, on the ``time.time()`` clock: ldirectord's timer starts then.

    Counting the deadline from here rather than from :func:`main` also counts the interpreter's
    start-up, which on a busy machine can take a good part of the margin.  ``/proc`` gives the
    start in clock ticks and the uptime in hundredths: about 10 ms precision.  Now, if ``/proc``
    cannot tell or the process is older than a checkcommand can be (it was not started for us).
    """
    import time

    now = time.time()
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return now
    age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    return now - age if 0.0 <= age <= MAX_START_AGE else now


def main() -> int:
    started = process_started()
    args = sys.argv[1:]
    if len(args) != 4:
        print(
            "usage: lvscheck-ldirectord VIP VPORT RIP RPORT  (ldirectord checktype=external checkcommand)",
            file=sys.stderr,
        )
        return 2
    config = find_config()
    if config is None:
        print(
            "lvscheck-ldirectord: no ldirectord.cf found (parent's command line, "
            "$LVSCHECK_LDIRECTORD_CONFIG, /etc/ha.d/ldirectord.cf)",
            file=sys.stderr,
        )
        return 1
    sockdir = socket_dir()
    if sockdir is not None:
        answer = _ask_server(sockdir, config, args, started)
        if answer is not None:
            code, reason = answer
            if code:
                print(f"lvscheck-ldirectord: {reason}", file=sys.stderr)
            return code
        _spawn_server(sockdir)
    from lvscheck.adapters.ldirectord import check_once

    code, reason = check_once(config, args, started)
    if code:
        print(f"lvscheck-ldirectord: {reason}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
