"""TLS client contexts shared by every check that speaks TLS.

Building an ``SSLContext`` (and loading the system CA store) costs milliseconds;
one context per distinct setting is built once per process and reused by every
check that asks for the same setting.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from typing import Any

from lvscheck.checktype import parse_bool
from lvscheck.errors import OptionError
from lvscheck.model import Option

__all__ = ["TLS_OPTIONS", "client_context", "context_from_options"]

TLS_OPTIONS: tuple[Option, ...] = (
    Option("tlsverify", "verify the server certificate and its name (yes/no)", "yes"),
    Option("cafile", "PEM file of CAs to trust instead of the system store"),
    Option("certfile", "PEM client certificate to present (with keyfile, or containing the key)"),
    Option("keyfile", "PEM private key of the client certificate"),
)


@functools.cache
def client_context(
    verify: bool = True,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    alpn: tuple[str, ...] = (),
) -> ssl.SSLContext:
    """A client context for these settings, built once and shared.

    ``alpn`` protocols (``("h2",)`` for gRPC) make a context of their own: one that
    offers h2 must never be shared with an HTTP/1.1 check.

    Raises ``OSError``/``ssl.SSLError`` when a file cannot be loaded; callers turn
    that into an option error at prepare time.
    """
    if verify:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def context_from_options(opts: Mapping[str, Any], alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The shared context for a check's parsed :data:`TLS_OPTIONS`, at prepare time.

    Raises :class:`OptionError` naming the option: an unreadable file, a bad
    ``tlsverify``, a certificate or key that does not load.
    """
    for name in ("cafile", "certfile", "keyfile"):
        path = opts[name]
        try:
            if path:
                with open(path, "rb"):  # a missing file named here, not by ssl
                    pass
        except OSError as exc:
            raise OptionError(f"{name}={path!r}: cannot read it: {exc.strerror or exc}") from None
    try:
        verify = parse_bool(opts["tlsverify"])
    except ValueError as exc:
        raise OptionError(f"tlsverify={opts['tlsverify']!r}: {exc}") from None
    try:
        return client_context(verify, opts["cafile"], opts["certfile"], opts["keyfile"], alpn)
    except (OSError, ssl.SSLError) as exc:
        raise OptionError(f"cannot load the TLS files (cafile/certfile/keyfile): {exc}") from None
