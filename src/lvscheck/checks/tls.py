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

from lvscheck.errors import OptionError
from lvscheck.model import Option
from lvscheck.plugin.check import parse_bool

__all__ = ["TLS_OPTIONS", "TLS_VERIFY", "client_context", "context_from_options", "tls_verify_mode"]

#: ``tlsverify=`` words: ``full`` (also yes) the chain and the name, ``chain`` the chain only
#: (ldirectord's LWP: ``verify_hostname => 0``), ``no`` (also no) nothing.
TLS_VERIFY = {"full": "full", "yes": "full", "chain": "chain", "no": "no"}

TLS_OPTIONS: tuple[Option, ...] = (
    Option(
        "tlsverify",
        "verify the certificate: full (chain and name; also yes), chain (chain only, as ldirectord), no",
        "yes",
    ),
    Option("cafile", "PEM file of CAs to trust instead of the system store"),
    Option("certfile", "PEM client certificate to present (with keyfile, or containing the key)"),
    Option("keyfile", "PEM private key of the client certificate"),
)


@functools.cache
def client_context(
    verify: bool | str = True,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    alpn: tuple[str, ...] = (),
) -> ssl.SSLContext:
    """A client context for these settings, built once and shared.

    ``verify``: ``True``/``"full"`` (chain and name), ``"chain"`` (chain only),
    ``False``/``"no"``.  ``alpn`` protocols (``("h2",)`` for gRPC) make a context of
    their own: one that offers h2 must never be shared with an HTTP/1.1 check.

    Raises ``OSError``/``ssl.SSLError`` when a file cannot be loaded; callers turn
    that into an option error at prepare time.
    """
    mode = "full" if verify is True else "no" if verify is False else verify
    if mode in ("full", "chain"):
        ctx = ssl.create_default_context(cafile=cafile)
        if mode == "chain":
            ctx.check_hostname = False  # the chain is still verified (CERT_REQUIRED)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_verify_mode(text: str) -> str:
    """``full``, ``chain`` or ``no`` for a ``tlsverify=`` value (yes/true/on/1 are full)."""
    word = text.strip().lower()
    try:
        return TLS_VERIFY[word]
    except KeyError:
        pass
    try:
        return "full" if parse_bool(word) else "no"
    except ValueError:
        raise OptionError(f"tlsverify={text!r}: expected full, chain or no (yes is full)") from None


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
    verify = tls_verify_mode(opts["tlsverify"])
    try:
        return client_context(verify, opts["cafile"], opts["certfile"], opts["keyfile"], alpn)
    except (OSError, ssl.SSLError) as exc:
        raise OptionError(f"cannot load the TLS files (cafile/certfile/keyfile): {exc}") from None
