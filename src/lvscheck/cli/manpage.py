"""Man pages from the parser that ``--help`` prints: ``python -m lvscheck.cli.manpage DIR``.

Writes ``lvscheck.8``, one ``lvscheck-COMMAND.8`` per subcommand and
``lvscheck-ldirectord.8`` into DIR.  Every synopsis, description, option and help text
comes from :func:`lvscheck.cli.parser.build_parser` (and, for ``lvscheck-ldirectord``,
from that module's docstring and the usage line it prints), so a page cannot say
something ``--help`` does not.  The Debian package runs this at build time; the
command itself never imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from lvscheck._version import __version__

__all__ = ["ldirectord_page", "main", "pages", "roff_escape"]

#: argparse's line width in the pages; fixed so that a page does not depend on the terminal.
WIDTH = 78

_EXIT_STATUS_RUN = (
    ("0", "up: the real server passed the check"),
    ("1", "degraded: up, with a reduced weight"),
    ("2", "down"),
    ("3", "unknown: bad usage, bad options or a config that cannot be used"),
)
_SEE_ALSO_EXTERNAL = "ldirectord(8), ipvsadm(8), systemctl(1)"


def roff_escape(text: str) -> str:
    """Text safe in a roff line: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in text.split("\n"))


def _fixed_width(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, width=WIDTH)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each subcommand, in the order ``--help`` lists them."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def _usage(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = _fixed_width
    return parser.format_usage().removeprefix("usage: ").strip()


def _option_title(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if not action.option_strings:
        return f"\\fI{roff_escape(formatter._metavar_formatter(action, action.dest)(1)[0])}\\fR"
    names = ", ".join(f"\\fB{roff_escape(s)}\\fR" for s in action.option_strings)
    if action.nargs == 0:
        return names
    metavar = formatter._format_args(action, action.dest.upper())
    return f"{names} \\fI{roff_escape(metavar)}\\fR"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """``.TP`` entries for every argument of ``parser`` but its subcommands and --help."""
    parser.formatter_class = _fixed_width
    formatter = parser._get_formatter()
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        help_text = formatter._expand_help(action) if action.help else ""
        if action.choices and not action.option_strings:
            help_text = f"{help_text} (one of {', '.join(map(str, action.choices))})".strip()
        lines += [".TP", _option_title(action, formatter), roff_escape(help_text)]
    return lines


def _header(name: str, summary: str) -> list[str]:
    title = roff_escape(name.upper())
    return [
        f'.TH {title} 8 "" "lvscheck {__version__}" "System Administration"',
        ".SH NAME",
        f"{roff_escape(name)} \\- {roff_escape(summary)}",
    ]


def _synopsis(usage: str) -> list[str]:
    return [".SH SYNOPSIS", ".nf", roff_escape(usage), ".fi"]


def _see_also(names: Iterable[str]) -> list[str]:
    refs = [f"\\fB{roff_escape(n)}\\fR(8)" for n in names]
    return [".SH SEE ALSO", ", ".join([*refs, _SEE_ALSO_EXTERNAL]) + "."]


def _check_types() -> list[str]:
    """The built-in check types and their options (plugins add theirs: ``lvscheck checks``)."""
    from lvscheck.plugins import PluginHost

    host = PluginHost(entry_points=False)
    host.load_builtins()
    lines = [
        ".SH CHECK TYPES",
        "Built in; installed plugins may add more, and \\fBlvscheck checks\\fR lists what is installed.",
    ]
    common: dict[str, str] = {}
    for check in sorted(host.all_check_types(), key=lambda c: c.name):
        port = f" (port {check.default_port})" if check.default_port else ""
        lines += [".TP", f"\\fB{roff_escape(check.name)}\\fR{port}", roff_escape(check.summary)]
        own = {o.name for o in check.options}
        for option in check.options:
            default = f" [default {option.default}]" if option.default is not None else ""
            title = f"\\fB{roff_escape(option.name)}=\\fR"
            lines += [".RS", ".TP", title, roff_escape(option.help + default), ".RE"]
        for option in check.all_options():
            if option.name not in own:
                common.setdefault(option.name, option.help)
    if common:
        lines += [".PP", "Every check type also takes:"]
        for name, help_text in common.items():
            lines += [".TP", f"\\fB{roff_escape(name)}=\\fR", roff_escape(help_text)]
    return lines


def _command_page(name: str, summary: str, parser: argparse.ArgumentParser, siblings: list[str]) -> str:
    lines = _header(f"lvscheck-{name}", summary) + _synopsis(_usage(parser))
    lines += [".SH DESCRIPTION", roff_escape(parser.description or summary[:1].upper() + summary[1:] + ".")]
    lines += [".SH OPTIONS", *_options(parser)]
    if name == "run":
        lines += [".SH EXIT STATUS", "With the default \\fB\\-\\-exit\\-codes nagios\\fR:"]
        for code, meaning in _EXIT_STATUS_RUN:
            lines += [".TP", code, roff_escape(meaning)]
        lines += _check_types()
    lines += _see_also(["lvscheck", *(f"lvscheck-{s}" for s in siblings if s != name)])
    return "\n".join(lines) + "\n"


_Command = tuple[str, str, argparse.ArgumentParser]


def _main_page(parser: argparse.ArgumentParser, commands: list[_Command]) -> str:
    summary = (parser.description or "").rstrip(".")
    lines = _header("lvscheck", summary[:1].lower() + summary[1:]) + _synopsis(_usage(parser))
    lines += [".SH DESCRIPTION", roff_escape(parser.description or "")]
    lines += [".SH OPTIONS", *_options(parser)]
    lines += [".SH COMMANDS"]
    for name, summary, _ in commands:
        lines += [".TP", f"\\fBlvscheck {roff_escape(name)}\\fR", f"{roff_escape(summary)}; see"]
        lines.append(f"\\fBlvscheck\\-{roff_escape(name)}\\fR(8).")
    lines += [
        ".SH FILES",
        ".TP",
        "/etc/ha.d/ldirectord.cf",
        "The configuration that \\fBlvscheck daemon\\fR, \\fBlvscheck check\\-config\\fR and",
        "\\fBlvscheck\\-ldirectord\\fR read, in ldirectord's own format.",
    ]
    names = [f"lvscheck-{n}" for n, _, _ in commands] + ["lvscheck-ldirectord"]
    lines += _see_also(names)
    return "\n".join(lines) + "\n"


def _rst_to_text(text: str) -> str:
    """The module docstring's reStructuredText roles and literals as plain text."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _paragraphs(text: str) -> list[str]:
    """Docstring paragraphs as roff, a numbered list as ``.IP`` items."""
    lines: list[str] = []
    for paragraph in text.strip().split("\n\n"):
        items = re.split(r"^(\d+)\. ", paragraph.strip(), flags=re.MULTILINE)
        if len(items) == 1:
            lines += [".PP", roff_escape(" ".join(paragraph.split()))]
            continue
        if items[0].strip():
            lines += [".PP", roff_escape(" ".join(items[0].split()))]
        for number, body in zip(items[1::2], items[2::2], strict=True):
            lines += [f".IP {number}. 4", roff_escape(" ".join(body.split()))]
    return lines


def _ldirectord_usage() -> str:
    """The usage line ``lvscheck-ldirectord`` prints when called without its four arguments."""
    import lvscheck_ldirectord

    saved = sys.argv
    err = io.StringIO()
    sys.argv = ["lvscheck-ldirectord"]
    try:
        with contextlib.redirect_stderr(err):
            lvscheck_ldirectord.main()
    finally:
        sys.argv = saved
    return err.getvalue().strip().removeprefix("usage: ")


def ldirectord_page() -> str:
    import lvscheck_ldirectord

    doc = _rst_to_text(lvscheck_ldirectord.__doc__ or "")
    first, _, rest = doc.partition("\n")
    summary = first.split(":", 1)[-1].strip().rstrip(".")
    usage = _ldirectord_usage()
    lines = _header("lvscheck-ldirectord", summary) + _synopsis(usage.split("  ")[0])
    lines += [".SH DESCRIPTION", *_paragraphs(rest)]
    lines += [
        ".SH EXAMPLE",
        "In a virtual of /etc/ha.d/ldirectord.cf:",
        ".PP",
        ".nf",
        roff_escape("\tchecktype=external\n\tcheckcommand=/usr/bin/lvscheck-ldirectord"),
        ".fi",
        ".SH ENVIRONMENT",
        ".TP",
        "LVSCHECK_LDIRECTORD_CONFIG",
        "The ldirectord.cf to use when the parent process is not an ldirectord.",
        ".TP",
        "LVSCHECK_LDIRECTORD_SERVER",
        "0, no or off: run every check in this process, start no check server.",
        ".TP",
        "LVSCHECK_LDIRECTORD_RUNDIR",
        "Directory of the check server's socket.",
        ".SH EXIT STATUS",
        ".TP",
        "0",
        "up",
        ".TP",
        "1",
        "down, or any problem (one line on standard error)",
        ".TP",
        "2",
        "not called with the four arguments",
    ]
    lines += _see_also(["lvscheck", "lvscheck-run"])
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """File name -> roff text of every page."""
    from lvscheck.cli.parser import build_parser

    parser = build_parser()
    commands = _subcommands(parser)
    names = [n for n, _, _ in commands]
    out = {"lvscheck.8": _main_page(parser, commands)}
    for name, summary, sub in commands:
        out[f"lvscheck-{name}.8"] = _command_page(name, summary, sub, names)
    out["lvscheck-ldirectord.8"] = ldirectord_page()
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m lvscheck.cli.manpage DIR", file=sys.stderr)
        return 2
    target = Path(args[0])
    target.mkdir(parents=True, exist_ok=True)
    for name, text in pages().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
