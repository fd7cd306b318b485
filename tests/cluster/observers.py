"""Long-lived observers of the cluster test, run inside the guest (stdlib only: ``python -I -S``).

Polling from the test with a new process each time would steal the one vCPU the cluster runs on;
these stay up and append time-stamped lines to a log that the test reads.

``observers.py watch VIP LOG``
    In a director's netns, every 0.1 s: is the VIP a local address (``bind()`` works), and what
    does this netns's IPVS table hold (``/proc/net/ip_vs``).  Logs ``EPOCH vip 1|0`` and
    ``EPOCH table ADDR:PORT=WEIGHT ...`` on every change.
``observers.py client VIP LOG [CONNECT_TIMEOUT]``
    In the client netns: starts ``GET /`` through the VIP every 0.2 s, each on a new connection in
    its own thread (so one slow connect does not delay the next request).  Logs
    ``START END ok NAME`` (NAME: the real that answered) or ``START END fail ERROR``.
``observers.py download VIP PATH LOG SECONDS``
    In the client netns: one ``GET PATH`` read slowly enough to last about SECONDS; logs
    ``EPOCH start``, ``EPOCH got BYTES`` every second and ``EPOCH done BYTES SHA256`` or
    ``EPOCH fail BYTES ERROR``.
"""

from __future__ import annotations

import errno
import hashlib
import socket
import sys
import threading
import time


def _hexaddr(h: str) -> str:
    ip, port = h.split(":")
    return ".".join(str(int(ip[i : i + 2], 16)) for i in range(0, 8, 2)) + f":{int(port, 16)}"


def ipvs_table() -> str:
    reals = []
    try:
        with open("/proc/net/ip_vs") as f:
            for line in f:
                w = line.split()
                if len(w) >= 4 and w[0] == "->" and w[1] != "RemoteAddress:Port":
                    reals.append(f"{_hexaddr(w[1])}={w[3]}")
    except OSError:
        return "no-ipvs"
    return " ".join(sorted(reals))


def vip_is_local(vip: str) -> bool:
    s = socket.socket()
    try:
        s.bind((vip, 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def watch(vip: str, log: str) -> None:
    last_vip: bool | None = None
    last_table: str | None = None
    with open(log, "a", buffering=1) as f:
        while True:
            t = time.time()
            here = vip_is_local(vip)
            if here != last_vip:
                f.write(f"{t:.3f} vip {int(here)}\n")
                last_vip = here
            table = ipvs_table()
            if table != last_table:
                f.write(f"{t:.3f} table {table}\n")
                last_table = table
            time.sleep(0.1)


def _request(vip: str, timeout: float, out: list[str], lock: threading.Lock) -> None:
    start = time.time()
    try:
        with socket.create_connection((vip, 80), timeout=timeout) as s:
            s.settimeout(10)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") and not head.startswith(b"HTTP/1.0 200"):
            raise OSError(f"answer {head[:20]!r}")
        line = f"{start:.3f} {time.time():.3f} ok {body.decode(errors='replace').strip() or '?'}\n"
    except OSError as e:
        why = errno.errorcode.get(e.errno, "-") if e.errno else str(e)[:40].replace(" ", "_")
        line = f"{start:.3f} {time.time():.3f} fail {type(e).__name__}:{why}\n"
    with lock:
        out.append(line)


def client(vip: str, log: str, timeout: float) -> None:
    lock = threading.Lock()
    done: list[str] = []
    with open(log, "a", buffering=1) as f:
        while True:
            t = time.time()
            if threading.active_count() < 200:
                threading.Thread(target=_request, args=(vip, timeout, done, lock), daemon=True).start()
            with lock:
                lines, done[:] = list(done), []
            f.writelines(lines)
            time.sleep(max(0.0, 0.2 - (time.time() - t)))


def download(vip: str, path: str, log: str, seconds: float) -> None:
    with open(log, "a", buffering=1) as f:
        got = 0
        digest = hashlib.sha256()
        f.write(f"{time.time():.3f} start\n")
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
            s.settimeout(10)
            s.connect((vip, 80))
            s.settimeout(60)
            s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("closed before the headers")
                head += chunk
            head, _, body = head.partition(b"\r\n\r\n")
            length = int(
                next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
            )
            rate = length / seconds
            digest.update(body)
            got = len(body)
            begun = time.time()
            reported = begun
            while got < length:
                chunk = s.recv(min(16384, length - got))
                if not chunk:
                    raise OSError("closed early")
                digest.update(chunk)
                got += len(chunk)
                now = time.time()
                if now - reported >= 1:
                    f.write(f"{now:.3f} got {got}\n")
                    reported = now
                ahead = got / rate - (now - begun)
                if ahead > 0:
                    time.sleep(ahead)
            s.close()
            f.write(f"{time.time():.3f} done {got} {digest.hexdigest()}\n")
        except (OSError, ValueError, StopIteration) as e:
            f.write(f"{time.time():.3f} fail {got} {type(e).__name__}:{e}\n")


if __name__ == "__main__":
    if sys.argv[1] == "watch":
        watch(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "client":
        client(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 10.0)
    elif sys.argv[1] == "download":
        download(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
