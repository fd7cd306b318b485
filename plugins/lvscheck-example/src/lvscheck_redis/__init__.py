"""lvscheck-redis: the ``redis`` check type, and the example plugin for lvscheck plugin authors.

The dialogue, on one connection under the check's one deadline::

    -> AUTH [login] passwd            (only with passwd=)
    <- +OK
    -> PING
    <- +PONG
    -> INFO replication               (only with role=)
    <- $N role:master ...             (or role:slave and master_link_status:up)

Any ``-ERR``-style reply, a missing ``+PONG``, the wrong role or a replica
whose link to its master is down makes the real server down.

Everything lvscheck needs from this plugin is the ``lvscheck_register_checks``
hook implementation at the bottom, found through the ``lvscheck`` entry point
in ``pyproject.toml``.  The wire protocol lives in :mod:`lvscheck_redis.protocol`
and is imported only when a redis check runs.
"""

from __future__ import annotations

from lvscheck import Check, CheckFailed, CheckRegistry, Option, OptionError, Outcome, Probe, hookimpl

__all__ = ["RedisCheck", "lvscheck_register_checks"]

#: What an operator may write after role=, and what ``INFO replication`` says for it.
ROLES = {"master": "master", "primary": "master", "replica": "slave", "slave": "slave"}


def parse_role(text: str) -> str:
    """``role=`` value -> the word ``INFO replication`` uses (``master`` or ``slave``)."""
    role = ROLES.get(text.strip().lower())
    if role is None:
        raise ValueError("expected master or replica")
    return role


class RedisCheck(Check):
    name = "redis"
    summary = "Redis: PING, expect +PONG; optional AUTH and replication role"
    default_port = 6379
    options = (
        Option("login", "ACL user for AUTH (Redis 6 and later); needs passwd"),
        Option("passwd", "password: send AUTH before PING", secret=True),
        Option("role", "require this replication role: master or replica", parse=parse_role),
    )

    def setup(self) -> None:
        if self.opts["login"] and not self.opts["passwd"]:
            raise OptionError("check type 'redis': login= needs passwd= as well")

    async def probe(self, probe: Probe) -> Outcome:
        # The "driver": imported here, not at the top, so that listing check
        # types or running another check never imports it.
        from lvscheck_redis.protocol import ErrorReply, command, parse_info

        reader, writer = await probe.connect()
        login, passwd, role = self.opts["login"], self.opts["passwd"], self.opts["role"]
        step = "AUTH"
        try:
            if passwd:
                probe.phase = "waiting for the AUTH reply"
                await command(reader, writer, "AUTH", *([login] if login else []), passwd)
            step, probe.phase = "PING", "waiting for the PONG"
            pong = await command(reader, writer, "PING")
            if pong != "PONG":
                raise CheckFailed(f"PING answered {pong!r}, expected +PONG")
            if role is None:
                return Outcome.up("PONG")
            step, probe.phase = "INFO", "waiting for INFO replication"
            info = await command(reader, writer, "INFO", "replication")
        except ErrorReply as exc:
            raise CheckFailed(f"{step} refused: {exc.message}") from None
        if not isinstance(info, bytes):
            raise CheckFailed(f"INFO replication answered {info!r}, expected a bulk string")
        fields = parse_info(info)
        actual = fields.get("role", "?")
        if actual != role:
            raise CheckFailed(f"role is {_shown(actual)}, expected {_shown(role)}")
        if role == "slave" and fields.get("master_link_status") != "up":
            master = f"{fields.get('master_host', '?')}:{fields.get('master_port', '?')}"
            raise CheckFailed(f"replica's link to its master {master} is down")
        return Outcome.up(f"PONG, role {_shown(actual)}", role=_shown(actual))


def _shown(role: str) -> str:
    return "replica" if role == "slave" else role


@hookimpl
def lvscheck_register_checks(register: CheckRegistry) -> None:
    register.add(RedisCheck)
