"""Prometheus text exposition of the daemon's counters and per-real state.

Per real (labels ``virtual``, ``real``): state, kernel weight, last check latency and
age, state changes, drained and maintenance.  ``promtool check metrics`` accepts the
output (tests/web/test_metrics.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lvscheck.daemon.director import Director

__all__ = ["PHASE_VALUE", "esc", "head_lines", "render_metrics", "shadow_lines"]

PHASE_VALUE = {"up": 1, "down": 0, "unknown": -1}


def esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def head_lines(director: Director) -> list[str]:
    """Everything before the per-real series: build info, counters, latency histogram, start lag."""
    import sys

    from lvscheck._version import __version__
    from lvscheck.daemon.status import LATENCY_BOUNDS

    c = director.counters
    out: list[str] = []
    add = out.append
    add("# HELP lvscheck_build_info The running lvscheck: version and Python (always 1).")
    add("# TYPE lvscheck_build_info gauge")
    py = ".".join(map(str, sys.version_info[:3]))
    add(f'lvscheck_build_info{{version="{esc(__version__)}",python="{py}"}} 1')
    add("# HELP lvscheck_checks_total Checks run, by result.")
    add("# TYPE lvscheck_checks_total counter")
    for state, n in sorted(c.checks.items()):
        add(f'lvscheck_checks_total{{result="{state}"}} {n}')
    add("# HELP lvscheck_check_latency_seconds Check latency (start to verdict).")
    add("# TYPE lvscheck_check_latency_seconds histogram")
    total = 0
    for bound, n in zip(LATENCY_BOUNDS, c.latency_buckets, strict=True):
        total += n
        add(f'lvscheck_check_latency_seconds_bucket{{le="{bound}"}} {total}')
    count = sum(c.checks.values())
    add(f'lvscheck_check_latency_seconds_bucket{{le="+Inf"}} {count}')
    add(f"lvscheck_check_latency_seconds_sum {c.latency_sum:.6f}")
    add(f"lvscheck_check_latency_seconds_count {count}")
    lag = director.scheduler.lag.snapshot()
    add("# HELP lvscheck_start_lag_seconds How late checks started (recent samples).")
    add("# TYPE lvscheck_start_lag_seconds summary")
    add(f'lvscheck_start_lag_seconds{{quantile="0.5"}} {lag["p50"]:.6f}')
    add(f'lvscheck_start_lag_seconds{{quantile="0.99"}} {lag["p99"]:.6f}')
    add(f"lvscheck_start_lag_seconds_sum {director.scheduler.lag.total:.6f}")
    add(f"lvscheck_start_lag_seconds_count {int(lag['count'])}")
    add("# HELP lvscheck_start_lag_max_seconds Largest start lag since the daemon started.")
    add("# TYPE lvscheck_start_lag_max_seconds gauge")
    add(f"lvscheck_start_lag_max_seconds {lag['max']:.6f}")
    for name, help_, value in (
        ("lvscheck_transitions_total", "Real-server state changes.", c.transitions),
        ("lvscheck_ipvs_writes_total", "IPVS table writes sent.", director.backend.writes),
        ("lvscheck_ipvs_batches_total", "IPVS write batches sent.", director.backend.batches),
        (
            "lvscheck_ipvs_write_errors_total",
            "IPVS writes the kernel refused or that failed.",
            c.write_errors,
        ),
        ("lvscheck_ipvs_restored_total", "Kernel entries restored by reconcile.", c.restored),
        ("lvscheck_held_results_total", "Failures not counted (director-side fault, guarded pool).", c.held),
        ("lvscheck_reloads_total", "Config reloads applied.", c.reloads),
        ("lvscheck_reload_failures_total", "Config reloads refused (bad config).", c.reload_failures),
    ):
        add(f"# HELP {name} {help_}")
        add(f"# TYPE {name} counter")
        add(f"{name} {value}")
    return out


#: HELP and TYPE lines of the per-real families, in the order they are written
STATE_HEAD = [
    "# HELP lvscheck_real_state 1 up, 0 down, -1 not yet known.",
    "# TYPE lvscheck_real_state gauge",
]
WEIGHT_HEAD = [
    "# HELP lvscheck_real_weight Weight in the kernel table (-1: no entry).",
    "# TYPE lvscheck_real_weight gauge",
]
GUARD_HEAD = [
    "# HELP lvscheck_pool_guarded 1 while the pool guard holds a pool (director-side failures).",
    "# TYPE lvscheck_pool_guarded gauge",
]
REAL_FAMILIES = (
    ("lvscheck_real_check_latency_seconds", "gauge", "Latency of the real's last check."),
    ("lvscheck_real_last_check_age_seconds", "gauge", "Seconds since the real's last check."),
    ("lvscheck_real_transitions_total", "counter", "State changes of the real."),
    ("lvscheck_real_drained", "gauge", "1 while drained by an operator (weight 0)."),
    ("lvscheck_real_maintenance", "gauge", "1 while in maintenance (lvscheck maintenance, maintenancedir)."),
)


def family_head(name: str, type_: str, help_: str) -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} {type_}"]


def render_metrics(director: Director) -> str:
    """The whole exposition in one go (the HTTP listener assembles the same from kept rows:
    :mod:`lvscheck.daemon.statusrows`)."""
    import time

    out = head_lines(director)
    add = out.append
    out += STATE_HEAD
    weights: list[str] = []
    guards: list[str] = []
    latency: list[str] = []
    age: list[str] = []
    changes: list[str] = []
    drained: list[str] = []
    maint: list[str] = []
    now = time.time()
    hist = director.history.reals
    ov = director.overrides
    for pool in director.layout.pools.values():
        v = esc(pool.name)
        sk = pool.service.key
        pstate = director.pools.get(pool.key)
        guards.append(f'lvscheck_pool_guarded{{virtual="{v}"}} {int(bool(pstate and pstate.guarded))}')
        for sid in pool.slots:
            rs = director.reals[sid]
            real = str(rs.slot.dest)
            labels = f'{{virtual="{v}",real="{esc(real)}"}}'
            add(f"lvscheck_real_state{labels} {PHASE_VALUE[rs.track.phase.value]}")
            kd = director.kernel.dest(sk, *rs.slot.dest.key)
            weights.append(f"lvscheck_real_weight{labels} {-1 if kd is None else kd.weight}")
            if rs.last is not None and rs.last_time is not None:
                latency.append(f"lvscheck_real_check_latency_seconds{labels} {rs.last.latency:.6f}")
                age.append(f"lvscheck_real_last_check_age_seconds{labels} {max(0.0, now - rs.last_time):.3f}")
            h = hist.get(sid)
            changes.append(f"lvscheck_real_transitions_total{labels} {0 if h is None else h.changes}")
            drained.append(f"lvscheck_real_drained{labels} {int(ov.is_drained(pool.name, real))}")
            maint.append(f"lvscheck_real_maintenance{labels} {int(rs.maintenance is not None)}")
    out += WEIGHT_HEAD
    out += weights
    out += GUARD_HEAD
    out += guards
    families = (latency, age, changes, drained, maint)
    for (name, type_, help_), lines in zip(REAL_FAMILIES, families, strict=True):
        out += family_head(name, type_, help_)
        out += lines
    out += shadow_lines(director)
    return "\n".join(out) + "\n"


def shadow_lines(director: Director) -> list[str]:
    """``daemon --shadow``: the disagreement gauge and counter (lvscheck.daemon.shadow)."""
    comparison = getattr(director, "comparison", None)
    if comparison is None:
        return []
    from lvscheck.daemon.shadow import metric_lines

    return metric_lines(comparison)
