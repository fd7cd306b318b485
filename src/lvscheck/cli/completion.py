"""Bash completion from the parser that ``--help`` prints: ``python -m lvscheck.cli.completion``.

Prints a bash script: subcommands, each one's options, the values of options with
choices (``--exit-codes``) come from :func:`lvscheck.cli.parser.build_parser` when the
script is generated; check types and their ``key=`` options come from ``lvscheck checks
--json`` the first time they are completed in a shell (so installed plugins are
included).  The Debian package generates it at build time into
/usr/share/bash-completion/completions/lvscheck; the command never imports this module.
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["main", "script"]

_RUNTIME = r"""
# Check types and their key= options, from the lvscheck being completed, once per shell.
_lvscheck_load_checks() {
    [[ -n ${_lvscheck_check_types+x} ]] && return
    _lvscheck_check_types=""
    declare -gA _lvscheck_check_options=()
    local line name type=""
    while IFS= read -r line; do
        case $line in
        '    "name": '*)
            type=${line#*: \"}; type=${type%\",}
            _lvscheck_check_types+=" $type" ;;
        '        "name": '*)
            name=${line#*: \"}; name=${name%\",}
            _lvscheck_check_options[$type]+=" $name" ;;
        esac
    done < <("$1" checks --json 2>/dev/null)
}

_lvscheck() {
    local line=${COMP_LINE:0:COMP_POINT}
    local -a words
    read -ra words <<<"$line"
    [[ -z $line || $line == *[[:space:]] ]] && words+=("")
    local n=${#words[@]} cur=${words[-1]} prev=""
    ((n > 1)) && prev=${words[n - 2]}
    local prog=${words[0]/#\~/$HOME} cmd="" i w
    local -a positionals=()
    COMPREPLY=()
    for ((i = 1; i < n - 1; i++)); do
        w=${words[i]}
        if [[ -z $cmd ]]; then
            [[ $w == -* ]] || cmd=$w
            continue
        fi
        if [[ $w != *=* && " ${_lvscheck_valued[$cmd]} " == *" $w "* ]]; then
            ((i++))
            continue
        fi
        [[ $w == -* ]] || positionals+=("$w")
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$_lvscheck_global" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$_lvscheck_commands" -- "$cur")
        fi
        return
    fi
    if [[ -n $prev && " ${_lvscheck_valued[$cmd]} " == *" $prev "* ]]; then
        # a value: its choices, else the shell's default (file names)
        [[ -n ${_lvscheck_choices["$cmd $prev"]+x} ]] &&
            mapfile -t COMPREPLY < <(compgen -W "${_lvscheck_choices["$cmd $prev"]}" -- "$cur")
        return
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${_lvscheck_options[$cmd]}" -- "$cur")
        return
    fi
    case $cmd in
    run)
        case ${#positionals[@]} in
        0)
            _lvscheck_load_checks "$prog"
            mapfile -t COMPREPLY < <(compgen -W "$_lvscheck_check_types" -- "$cur") ;;
        1)
            mapfile -t COMPREPLY < <(compgen -A hostname -- "$cur") ;;
        *)
            [[ $cur == *=* ]] && return # the value: the shell's default (file names)
            _lvscheck_load_checks "$prog"
            local keys=${_lvscheck_check_options[${positionals[0]}]}
            mapfile -t COMPREPLY < <(compgen -S = -W "$keys" -- "$cur")
            compopt -o nospace 2>/dev/null ;;
        esac ;;
    checks)
        if ((${#positionals[@]} == 0)); then
            _lvscheck_load_checks "$prog"
            mapfile -t COMPREPLY < <(compgen -W "$_lvscheck_check_types" -- "$cur")
        fi ;;
    *)
        # a first positional with choices (maintenance on|off)
        ((${#positionals[@]} == 0)) && [[ -n ${_lvscheck_first_choices[$cmd]+x} ]] &&
            mapfile -t COMPREPLY < <(compgen -W "${_lvscheck_first_choices[$cmd]}" -- "$cur") ;;
    esac
}
complete -o default -F _lvscheck lvscheck
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Every option string, those that take a value, and the choices of each such option."""
    flags: list[str] = []
    valued: list[str] = []
    choices: dict[str, list[str]] = {}
    for action in parser._actions:
        if not action.option_strings:
            continue
        flags += action.option_strings
        if action.nargs != 0:
            valued += action.option_strings
            if action.choices:
                for option in action.option_strings:
                    choices[option] = [str(c) for c in action.choices]
    return flags, valued, choices


def _assoc(name: str, table: dict[str, str]) -> str:
    items = " ".join(f"[{shlex.quote(k)}]={shlex.quote(v)}" for k, v in table.items())
    return f"declare -gA {name}=({items})"


def script() -> str:
    """The bash completion script for ``lvscheck``."""
    from lvscheck.cli.parser import build_parser

    parser = build_parser()
    commands = _subparsers(parser)
    global_flags, _, _ = _flags(parser)
    options: dict[str, str] = {}
    valued: dict[str, str] = {}
    choices: dict[str, str] = {}
    first_choices: dict[str, str] = {}
    for name, sub in commands.items():
        positionals = [a for a in sub._actions if not a.option_strings]
        if positionals and positionals[0].choices:
            first_choices[name] = " ".join(str(c) for c in positionals[0].choices)
        flags, takes_value, values = _flags(sub)
        options[name] = " ".join(flags)
        valued[name] = " ".join(takes_value)
        for option, words in values.items():
            choices[f"{name} {option}"] = " ".join(words)
    head = [
        "# bash completion for lvscheck(8)",
        "# Generated by `python -m lvscheck.cli.completion` from lvscheck's argparse parser: do not edit.",
        f"_lvscheck_commands={shlex.quote(' '.join(commands))}",
        f"_lvscheck_global={shlex.quote(' '.join(global_flags))}",
        _assoc("_lvscheck_options", options),
        _assoc("_lvscheck_valued", valued),
        _assoc("_lvscheck_choices", choices),
        _assoc("_lvscheck_first_choices", first_choices),
    ]
    return "\n".join(head) + "\n" + _RUNTIME.lstrip("\n")


def main() -> int:
    sys.stdout.write(script())
    return 0


if __name__ == "__main__":
    sys.exit(main())
