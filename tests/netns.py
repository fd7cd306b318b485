"""Network namespaces on a bridge, for the tests that run inside ../shared/ipvs-guest.

The guest tests put each real server (and a cluster's nodes and client) in its own
network namespace, plugged into a bridge on the director by a veth pair, with
addresses that exist only inside the guest.  This is that set-up, once:

* :func:`remove` deletes what an earlier (killed) run left: namespaces, with what
  still runs in them, and links; whichever exist;
* :func:`bridge` makes the director's side of the LAN;
* :func:`plug` makes a namespace whose ``eth0`` is on that bridge;
* :func:`dummy` holds VIPs on the director;
* :func:`nat_lan` is all of it for a NAT (masq) director: reals routed through it, VIPs on it.

Every command must work or the fixture fails (:func:`sh`); clean-ups never fail (:func:`quiet`).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence

__all__ = ["bridge", "dummy", "nat_lan", "plug", "quiet", "remove", "sh"]


def sh(cmd: str) -> str:
    """Run ``cmd`` in a shell: its output; a :class:`RuntimeError` with its stderr if it fails."""
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def quiet(cmd: str) -> None:
    """Run ``cmd`` in a shell and ignore how it ends (clean-ups of what may not exist)."""
    subprocess.run(cmd, shell=True, capture_output=True, check=False, timeout=120)


def remove(namespaces: Iterable[str] = (), links: Iterable[str] = ()) -> None:
    """Delete ``namespaces`` (killing what still runs in them) and ``links``, whichever exist."""
    for ns in namespaces:
        quiet(f"ip netns pids {ns} | xargs -r kill -9")
        quiet(f"ip netns del {ns}")
    for link in links:
        quiet(f"ip link del {link}")


def bridge(name: str, address: str | None = None) -> None:
    """A bridge ``name`` on the director, up, holding ``address`` (``10.0.0.1/24``) if given."""
    sh(f"ip link add {name} type bridge && ip link set {name} up")
    if address is not None:
        sh(f"ip addr add {address} dev {name}")


def plug(ns: str, bridge: str, host_side: str, address: str, gateway: str | None = None) -> None:
    """Namespace ``ns`` with ``eth0`` at ``address`` (``10.0.0.2/24``) on ``bridge``.

    ``host_side`` names the director's end of the veth pair; ``lo`` is up inside; with a
    ``gateway`` (the bridge's address) the namespace routes everything through the director,
    as the reals of a NAT (masq) director must.
    """
    sh(
        f"ip netns add {ns} && ip link add {host_side} type veth peer name eth0 netns {ns}"
        f" && ip link set {host_side} master {bridge} && ip link set {host_side} up"
        f" && ip -n {ns} addr add {address} dev eth0 && ip -n {ns} link set eth0 up"
        f" && ip -n {ns} link set lo up"
    )
    if gateway is not None:
        sh(f"ip -n {ns} route add default via {gateway}")


def dummy(name: str, *addresses: str) -> None:
    """A dummy interface ``name`` on the director, up, holding ``addresses`` (VIPs: ``10.0.1.1/32``)."""
    sh(f"ip link add {name} type dummy && ip link set {name} up")
    for address in addresses:
        sh(f"ip addr add {address} dev {name}")


@contextlib.contextmanager
def nat_lan(
    bridge_name: str, subnet: str, reals: Mapping[str, int], vip_link: str, vips: Sequence[str]
) -> Iterator[dict[str, str]]:
    """The LAN of a NAT director, removed afterwards (and first: leftovers of a killed run).

    ``bridge_name`` holds ``{subnet}.1/24`` (``subnet`` is ``10.0.0``); each namespace of
    ``reals`` gets ``{subnet}.{number}`` and its default route through the director; the
    ``vips`` sit on the dummy ``vip_link``; the director forwards, with IPVS conntrack on.
    Yields {namespace: address}.
    """
    links = (bridge_name, vip_link)
    remove(reals, links)
    try:
        bridge(bridge_name, f"{subnet}.1/24")
        addresses = {}
        for ns, number in reals.items():
            addresses[ns] = f"{subnet}.{number}"
            plug(ns, bridge_name, f"{bridge_name}-{ns}", f"{subnet}.{number}/24", gateway=f"{subnet}.1")
        dummy(vip_link, *(f"{vip}/32" for vip in vips))
        sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.vs.conntrack=1")
        yield addresses
    finally:
        remove(reals, links)
