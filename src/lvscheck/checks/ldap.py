"""``ldap`` and ``ldaps``: bind, then a base-scope search, as ldirectord does, with verified TLS.

The dialogue (ldap3, imported in the worker thread): connect (``ldaps``: TLS at
once; ``ldap`` with ``starttls=yes``: the StartTLS extended operation, then TLS),
a simple bind as ``login`` with the password, or an anonymous bind without a
login; one search with base ``request`` (default ``""``: the root DSE), scope
base, filter ``(objectClass=*)`` and attribute list ``1.1`` (DNs only); an
unbind.  Up iff exactly one entry comes back and, when ``receive`` is given,
its DN matches it (ldirectord's meaning).

ldap3 is synchronous, so the dialogue runs in a small, lazily created thread
pool (:data:`MAX_WORKERS` threads) behind the async ``probe``.  A stalled
server cannot keep a worker past the check's deadline: every socket operation
gets a timeout from the time left, and when the deadline hits the event loop
shuts the worker's socket down, which ends any blocked ``recv`` at once.
ldap3 decodes in the worker thread, outside the event loop's CPU meter: the guard
in front of its socket (:mod:`._berguard`) reads the thread's own CPU clock at each
``recv`` and refuses to read on past the check's CPU budget.

docs/checks/ldap.md has the options and the exact operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lvscheck.checks._db import PASSWORD_OPTIONS, nonempty, parse_text_regex, read_password
from lvscheck.checks.tls import TLS_OPTIONS, context_from_options
from lvscheck.engine import cpumeter
from lvscheck.errors import CheckFailed, OptionError
from lvscheck.markers import hookimpl
from lvscheck.model import Option, Outcome
from lvscheck.plugin.check import Check, parse_bool

if TYPE_CHECKING:
    from lvscheck.plugin.probe import Probe
    from lvscheck.plugin.registry import CheckRegistry

__all__ = ["MAX_WORKERS", "LdapCheck", "LdapsCheck", "busy_workers"]

#: Threads running LDAP dialogues at once (per process).  Checks beyond that
#: wait for a worker, inside their own deadline.
MAX_WORKERS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_busy = 0


def busy_workers() -> int:
    """How many worker threads are inside an LDAP dialogue right now."""
    return _busy


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="lvscheck-ldap")
    return _pool


class _Job:
    """One dialogue's shared state between the event loop and its worker thread.

    ``close()`` is called by the engine when the check ends (``probe.track``);
    if the worker is still talking, it shuts the socket down so the worker's
    blocked call returns now instead of at its own timeout.
    """

    def __init__(self, probe: Probe, deadline: float) -> None:
        self.probe = probe
        self.deadline = deadline  # time.monotonic() units
        self.conn: Any = None
        self.counted: Any = None  # the _berguard.CountedSocket ldap3 reads from
        self.tls_error: BaseException | None = None
        self.cpu_budget: float | None = None  # the check's CPU budget (lvscheck.engine.cpumeter)
        self.finished = False
        self.lock = threading.Lock()

    def phase(self, text: str) -> None:
        self.probe.phase = text  # a plain attribute store: safe from the worker thread

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def close(self) -> None:
        with self.lock:
            if self.finished or self.conn is None:
                return
            sock = getattr(self.conn, "socket", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class LdapCheck(Check):
    name = "ldap"
    requires = ("ldap3",)
    summary = "LDAP bind (anonymous or simple) and base-scope search; exactly one entry, DN matches receive"
    default_port = 389
    timeout_option = "checktimeout"  # ldirectord runs the whole ldap check under alarm(checktimeout)
    implicit_tls = False
    options = (
        Option("login", "DN to bind as (simple bind, with the password); without both the bind is anonymous"),
        *PASSWORD_OPTIONS,
        Option("request", "search base (scope base); empty: the root DSE", ""),
        Option(
            "receive",
            "regular expression the entry's DN must match (searched, unanchored)",
            None,
            parse_text_regex,
        ),
        Option("starttls", "ldap only: upgrade with StartTLS before binding (yes/no)", "no", parse_bool),
        Option("servername", "name to verify in the server certificate and send as SNI (default: the host)"),
        *TLS_OPTIONS,
    )

    def setup(self) -> None:
        opts = self.opts
        login: str | None = opts["login"] or None
        password = read_password(self.name, opts)
        if password:
            self.keep_secret(password)
        # ldirectord binds as login only when login and passwd are both set, else anonymously.
        # (A DN with an empty password would be an unauthenticated bind, which proves nothing.)
        self.login: str | None = login if login and password else None
        self.password: str | None = password if login and password else None
        self.anonymous_note = ""
        if login and not password:
            self.anonymous_note = " (login without a password: anonymous, as ldirectord does)"
        elif password and not login:
            self.anonymous_note = " (a password without login: anonymous, as ldirectord does)"
        self.base: str = opts["request"]
        self.receive: re.Pattern[str] | None = nonempty(opts["receive"])  # receive="" is no receive
        self.starttls: bool = opts["starttls"]
        if self.implicit_tls and self.starttls:
            raise OptionError("starttls=yes is for ldap; ldaps speaks TLS from the first byte")
        self.use_tls = self.implicit_tls or self.starttls
        self.server_name: str = opts["servername"] or self.spec.target.host
        self.tls_context: ssl.SSLContext | None = None
        if self.use_tls:
            self.tls_context = context_from_options(opts)

    def describe(self) -> str:
        return (
            f"{self.name} {self.login or 'anonymous'} base={self.base!r} {self.spec.target.host}:{self.port}"
        )

    async def probe(self, probe: Probe) -> Outcome:
        job = _Job(probe, time.monotonic() + probe.remaining())
        meter = cpumeter.current()  # (not in the worker thread: run_in_executor copies no context)
        if meter is not None:
            job.cpu_budget = meter.budget
        probe.track(job)
        probe.phase = "waiting for a free LDAP worker thread"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_executor(), self._dialogue, probe.host, probe.port, job)

    # -- the worker thread ----------------------------------------------------------------

    def _dialogue(self, host: str, port: int, job: _Job) -> Outcome:
        global _busy
        with _pool_lock:
            _busy += 1
        try:
            return self._talk(host, port, job)
        finally:
            with _pool_lock:
                _busy -= 1
            with job.lock:
                job.finished = True
                conn = job.conn
            if conn is not None and not conn.closed:
                with contextlib.suppress(Exception):  # the verdict is in; a dead socket cannot unbind
                    conn.unbind()  # UnbindRequest, then close

    def _talk(self, host: str, port: int, job: _Job) -> Outcome:
        import ldap3
        from ldap3.core import exceptions as ldap_errors

        where = f"{host}:{port}"
        job.phase(f"connecting to {where}")
        tls = _cached_context_tls(self.tls_context, self.server_name, job) if self.use_tls else None
        server = ldap3.Server(
            host,
            port=port,
            use_ssl=self.implicit_tls,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=min(self.connect_timeout, job.remaining()),
        )
        conn = ldap3.Connection(
            server,
            user=self.login,
            password=self.password,
            authentication=ldap3.SIMPLE if self.login else ldap3.ANONYMOUS,
            client_strategy=ldap3.SYNC,
            auto_bind=ldap3.AUTO_BIND_NONE,
            auto_referrals=False,
            read_only=True,
            raise_exceptions=False,
            check_names=False,
            # ldap3 packs this into SO_RCVTIMEO as an integer; the real limit is set per step below
            receive_timeout=max(1, int(job.remaining() + 0.999)),
        )
        with job.lock:
            job.conn = conn
        try:
            if self.implicit_tls:
                job.phase(f"connecting to {where} and in the TLS handshake")
            conn.open()
            _count(conn, job)  # LDAP message lengths checked and bytes counted from here
            if self.starttls:
                job.phase("in StartTLS")
                _limit(conn, job)
                conn.start_tls()
            who = self.login or "anonymous"
            job.phase(f"waiting for the bind as {who}")
            _limit(conn, job)
            if not conn.bind():
                raise CheckFailed(f"{_bind_failure(conn.result)} (bind as {who})")
            job.phase(f"waiting for the search of {self.base or 'the root DSE'!r}")
            _limit(conn, job)
            conn.search(
                search_base=self.base,
                search_filter="(objectClass=*)",
                search_scope=ldap3.BASE,
                dereference_aliases=ldap3.DEREF_NEVER,
                attributes=[ldap3.NO_ATTRIBUTES],
                size_limit=2,
                time_limit=max(1, int(job.remaining())),
            )
        except ldap_errors.LDAPException as exc:
            raise _transport_failure(exc, job) from None
        except OSError:  # (a StartTLS re-wrap reads outside ldap3's wrapper)
            refused = job.counted.refused if job.counted is not None else None
            if refused is not None:
                raise CheckFailed(f"{refused} {job.probe.phase}") from None
            raise
        except (IndexError, KeyError, ValueError, TypeError, UnicodeError) as exc:
            # ldap3's BER decoder trips over bytes that are not LDAP
            if job.tls_error is not None:
                raise job.tls_error from None
            raise CheckFailed(f"LDAP protocol error {job.probe.phase}: {type(exc).__name__}: {exc}") from None
        result = conn.result or {}
        entries = [r for r in conn.response or () if r.get("type") == "searchResEntry"]
        base_shown = repr(self.base) if self.base else "the root DSE"
        if result.get("result", 0) != 0 and not entries:
            raise CheckFailed(f"search of {base_shown} failed: {_ldap_result(result)}")
        if len(entries) != 1:
            raise CheckFailed(f"search of {base_shown} returned {len(entries)} entries, exactly 1 wanted")
        dn = str(entries[0].get("dn", ""))
        bound = f"bound as {self.login}" if self.login else f"anonymous bind{self.anonymous_note}"
        if self.receive is not None and not self.receive.search(dn):
            raise CheckFailed(f"{bound}; entry DN {dn!r} does not match receive={self.receive.pattern!r}")
        verified = self.tls_context is not None and self.tls_context.verify_mode != ssl.CERT_NONE
        tls_note = "; TLS verified" if verified else ("; TLS unverified" if self.use_tls else "")
        found = f"found {dn!r}" if dn else "found the root DSE"
        return Outcome.up(f"{bound}; {found}{tls_note}")


def _count(conn: Any, job: _Job) -> None:
    """Put the guard between ldap3 and its socket (see _berguard.py)."""
    from lvscheck.checks._berguard import CountedSocket

    sock = conn.socket
    if sock is not None and not isinstance(sock, CountedSocket):
        if job.counted is not None:
            counted = job.counted.rewrap(sock)
        else:
            counted = CountedSocket(sock, cpu_budget=job.cpu_budget, cpu_start=time.thread_time())
            if job.cpu_budget is not None:
                _spend_per_message(conn.strategy, job)
        job.counted = counted
        conn.socket = counted


def _spend_per_message(strategy: Any, job: _Job) -> None:
    """Check the thread's CPU after ldap3 decodes each message (its costly step), not only per recv.

    ldap3 decodes every message a ``recv`` completed before it reads again; without this,
    a server that fills one read with many messages would get all of them decoded.
    """
    for name in ("decode_response_fast", "decode_response"):
        decode = getattr(strategy, name)

        def checked(message: Any, decode: Any = decode) -> Any:
            counted = job.counted
            if counted is not None:
                counted.spend()
            return decode(message)

        setattr(strategy, name, checked)


def _limit(conn: Any, job: _Job) -> None:
    """Bound the next blocking socket call by the time left before the deadline."""
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.settimeout(job.remaining())


def _ldap_result(result: dict[str, Any]) -> str:
    text = f"{result.get('description', '?')} ({result.get('result', '?')})"
    message = str(result.get("message") or "").strip()
    return f"{text}: {message}" if message else text


def _bind_failure(result: dict[str, Any]) -> str:
    if result.get("result") in (
        49,
        48,
        50,
    ):  # invalidCredentials, inappropriateAuthentication, insufficientAccessRights
        return f"authentication failed: {_ldap_result(result)}"
    return f"bind failed: {_ldap_result(result)}"


def _transport_failure(exc: BaseException, job: _Job) -> BaseException:
    """ldap3 wraps socket and TLS errors in its own exceptions; unwrap what the runner words."""
    if job.tls_error is not None:
        return job.tls_error  # SSLCertVerificationError and friends
    refused = job.counted.refused if job.counted is not None else None
    if refused is not None:
        return CheckFailed(f"{refused} {job.probe.phase}")
    text = str(exc)
    lowered = text.lower()
    if "refused" in lowered:
        return ConnectionRefusedError(111, "Connection refused")
    if "timed out" in lowered:
        return TimeoutError()
    if job.deadline - time.monotonic() <= 0:
        return TimeoutError()
    if "startTLS" in text or "starttls" in lowered:
        return CheckFailed(f"StartTLS failed: {text}")
    return CheckFailed(f"LDAP connection failed {job.probe.phase}: {text}")


_tls_class: Any = None


def _cached_context_tls(context: ssl.SSLContext | None, server_name: str, job: _Job) -> Any:
    """An ``ldap3.Tls`` that wraps with our shared context (ldap3 builds a new one per connection)."""
    global _tls_class
    if _tls_class is None:
        import ldap3

        class CachedContextTls(ldap3.Tls):  # type: ignore[misc]
            def __init__(self, context: ssl.SSLContext, server_name: str, job: _Job) -> None:
                super().__init__(validate=context.verify_mode)
                self.context = context
                self.server_name = server_name
                self.job = job

            def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
                plain = connection.socket
                counted = self.job.counted
                if counted is not None and plain is counted:  # StartTLS: wrap the real socket
                    plain = counted.raw
                try:
                    connection.socket = self.context.wrap_socket(
                        plain,
                        server_side=False,
                        do_handshake_on_connect=do_handshake,
                        server_hostname=self.server_name,
                    )
                except BaseException as exc:
                    self.job.tls_error = exc
                    raise
                if counted is not None:
                    _count(connection, self.job)

        _tls_class = CachedContextTls
    assert context is not None
    return _tls_class(context, server_name, job)


class LdapsCheck(LdapCheck):
    name = "ldaps"
    summary = "LDAP over TLS (port 636): verified TLS, then bind and base-scope search as ldap"
    default_port = 636
    implicit_tls = True


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(LdapCheck)
    register.add(LdapsCheck)
