"""OpenLDAP slapd on 127.0.0.1 for the ``ldap``/``ldaps`` checks: ldap:// (with StartTLS) and ldaps://.

Recipe: ../shared/reference/test-peers.md section 1.  A slapd.conf with an mdb
database for ``dc=example,dc=org``, a bind user ``uid=lvscheck,ou=people,...``,
and a server certificate for 127.0.0.1/localhost from a test CA made with
trustme (the CA's PEM is ``Slapd.cafile``).  ``slapd -d 0`` stays in the foreground.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.peers import Server, free_port, own_tmpdir, require_binary, running, wait_for_port

__all__ = ["BASE", "BIND_DN", "BIND_PASSWORD", "Slapd", "start_slapd"]

BASE = "dc=example,dc=org"
BIND_DN = f"uid=lvscheck,ou=people,{BASE}"
BIND_PASSWORD = "ldap-S3cr3t-pw"

_LDIF = f"""\
dn: {BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: {BIND_DN}
objectClass: inetOrgPerson
uid: lvscheck
cn: lvscheck
sn: Check
userPassword: {{PW}}

dn: cn=health,{BASE}
objectClass: organizationalRole
cn: health
"""


@dataclass
class Slapd:
    server: Server
    port: int  # ldap:// (StartTLS offered)
    tls_port: int  # ldaps://
    cafile: Path
    workdir: Path


def _hash(password: str) -> str:
    out = subprocess.run(
        [shutil.which("slappasswd") or "/usr/sbin/slappasswd", "-s", password],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@contextlib.contextmanager
def start_slapd() -> Iterator[Slapd]:
    slapd = require_binary("slapd", "/usr/sbin/slapd")
    slapadd = require_binary("slapadd", "/usr/sbin/slapadd")
    import trustme

    workdir = own_tmpdir("slapd")
    try:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        cafile = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(cafile))
        cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        (workdir / "db").mkdir()
        (workdir / "slapd.conf").write_text(
            f"""\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile {workdir}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {cafile}
TLSCertificateFile {workdir}/cert.pem
TLSCertificateKeyFile {workdir}/key.pem
database mdb
maxsize 10485760
suffix "{BASE}"
rootdn "cn=admin,{BASE}"
rootpw {_hash("adminpw")}
directory {workdir}/db
access to attrs=userPassword by self write by anonymous auth by * none
access to dn.subtree="ou=people,{BASE}" by users read by * none
access to * by * read
"""
        )
        (workdir / "base.ldif").write_text(_LDIF.replace("{PW}", _hash(BIND_PASSWORD)))
        subprocess.run(
            [slapadd, "-f", str(workdir / "slapd.conf"), "-l", str(workdir / "base.ldif")],
            check=True,
            capture_output=True,
        )
        port, tls_port = free_port(), free_port()
        argv = [
            slapd,
            "-f",
            str(workdir / "slapd.conf"),
            "-h",
            f"ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/",
            "-d",
            "0",
        ]
        with running(argv, port, workdir) as server:
            wait_for_port(tls_port)
            yield Slapd(server, port, tls_port, cafile, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
