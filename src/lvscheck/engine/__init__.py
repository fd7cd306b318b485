"""The check engine: prepare checks, run them concurrently under caps and deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from lvscheck.engine.cpumeter import CPU_BUDGET
from lvscheck.engine.limits import Limits
from lvscheck.engine.loopwatch import LoopWatch
from lvscheck.engine.runner import run_prepared
from lvscheck.model import CheckSpec, Result, State
from lvscheck.plugin.check import Check
from lvscheck.plugins import PluginHost, default_host

__all__ = ["CPU_BUDGET", "STARVED_AFTER", "Engine", "Limits", "LoopWatch", "run_prepared"]

#: Seconds of event-loop blocking during a check from which its failure is not the real's fault.
STARVED_AFTER = 0.25


class Engine:
    """Runs checks: prepares specs through the plugin host, caps concurrency, reports results.

    One engine per event loop.  ``max_in_flight`` caps checks in flight in total and
    ``per_host`` against one real-server host.
    """

    def __init__(
        self,
        plugins: PluginHost | None = None,
        *,
        max_in_flight: int = 512,
        per_host: int = 8,
        on_result: Callable[[Result], None] | None = None,
        cpu_budget: float | None = CPU_BUDGET,
    ) -> None:
        self.plugins = plugins or default_host()
        self.limits = Limits(max_in_flight, per_host)
        self._on_result = on_result
        self._observe = self.plugins.has_check_done_observers()
        self.watch: LoopWatch | None = None
        #: seconds of CPU one check may use (:mod:`.cpumeter`; a check's ``cpubudget=`` wins);
        #: None or 0: not metered
        self.cpu_budget = cpu_budget

    def prepare(self, spec: CheckSpec) -> Check:
        """Validate ``spec`` into a reusable check; raises :class:`~lvscheck.errors.UsageError`."""
        return self.plugins.prepare(spec)

    async def run(self, check: Check | CheckSpec, loop: asyncio.AbstractEventLoop | None = None) -> Result:
        """Run one check (a spec is prepared first) within the concurrency caps.

        ``loop``: the running loop, from a caller that has it (saves syscalls: :func:`run_prepared`)."""
        prepared = check if isinstance(check, Check) else self.prepare(check)
        host = prepared.spec.target.host
        await self.limits.acquire(host)
        watch = self.watch
        mark = 0.0 if watch is None else watch.blocked
        try:
            result = await run_prepared(prepared, self.cpu_budget, loop)
        finally:
            self.limits.release(host)
        if watch is not None and result.state is State.DOWN:
            blocked = watch.blocked_since(mark)
            if blocked >= STARVED_AFTER:
                result = result.replace(details={**result.details, "starved": round(blocked, 3)})
        if self._on_result is not None:
            self._on_result(result)
        if self._observe:
            self.plugins.check_done(result)
        return result

    async def run_many(self, checks: Iterable[Check | CheckSpec]) -> list[Result]:
        """Run every check concurrently; results come back in the order given.

        All specs are prepared before anything runs, so a bad option fails the
        whole call and nothing is half done.
        """
        prepared = [c if isinstance(c, Check) else self.prepare(c) for c in checks]
        return list(await asyncio.gather(*(self.run(c) for c in prepared)))


async def check_many(
    specs: Sequence[CheckSpec], *, max_in_flight: int = 512, per_host: int = 8
) -> list[Result]:
    """Run ``specs`` concurrently with the default plugins: one call from async code."""
    return await Engine(max_in_flight=max_in_flight, per_host=per_host).run_many(specs)
