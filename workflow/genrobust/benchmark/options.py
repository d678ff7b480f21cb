"""--options: a benchmark's options as one JSON mapping (config `benchmarks: <name>:` as the rules
pass it), checked by the same parser as the flags they stand for."""

from __future__ import annotations

import argparse
import json

from .system import BenchmarkError

NOT_OPTIONS = ("options", "json_out")  # the rule's own arguments


def options_argv(options: dict, parser: argparse.ArgumentParser) -> list[str]:
    """The command-line words of a mapping of option names (batch_size) to values: a list is one
    option's values, a mapping its JSON, true is a flag, false and null leave the option out."""
    argv: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if key in NOT_OPTIONS or flag not in parser._option_string_actions:
            raise BenchmarkError(f"--options: unknown option {key!r} (the names of {parser.prog}'s flags, "
                                 "with _ for -)")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif isinstance(value, dict):  # a JSON-valued option (generation's --cache)
            argv += [flag, json.dumps(value)]
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def apply_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """args with args.options parsed on top (they override the flags they name)."""
    if not args.options:
        return args
    if not isinstance(args.options, dict):
        raise BenchmarkError(f"--options must be a JSON mapping, not {json.dumps(args.options)}")
    argv = options_argv(args.options, parser)
    try:
        return parser.parse_args(argv, namespace=args)
    except SystemExit as e:  # argparse has printed what is wrong on stderr
        raise BenchmarkError(f"--options {json.dumps(args.options)}: invalid for {parser.prog} (see above)") from e
