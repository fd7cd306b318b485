"""``lvscheck status`` lists the private services of via=vip checks, and says when one is missing."""

from __future__ import annotations

from typing import Any

from lvscheck.cli.status_view import render


def answer(via: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pid": 1,
        "state": "running",
        "config": "/etc/ha.d/ldirectord.cf",
        "ipvs": "netlink",
        "checks": 10,
        "start_lag": {"p50": 0.001, "p99": 0.002},
        "ipvs_write_errors": 0,
        "virtuals": [],
        "via_services": via,
    }


def test_private_services_are_listed_as_such() -> None:
    text = render(
        answer(
            [
                {
                    "service": "FWM 1280704512",
                    "mark": 1280704512,
                    "real": "192.168.0.110",
                    "forwarding": "gate",
                    "in_kernel": True,
                },
                {
                    "service": "FWM 1280704513",
                    "mark": 1280704513,
                    "real": "192.168.0.140",
                    "forwarding": "ipip",
                    "in_kernel": False,
                },
            ]
        ),
        now=0,
    )
    assert "checks through the VIP (via=vip): private services, no client traffic" in text
    assert "FWM 1280704512           -> 192.168.0.110 gate\n" in text
    assert "FWM 1280704513           -> 192.168.0.140 ipip  NOT IN KERNEL" in text


def test_nothing_said_without_via_vip() -> None:
    assert "through the VIP" not in render(answer([]), now=0)
