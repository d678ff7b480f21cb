"""The config schema's verdict in one line: the key at fault, what is wrong with it, and for an
unknown key the one meant ("did you mean"), instead of jsonschema's dump of the whole schema
(~2,000 lines for a typo at the top level). Snakemake's validate() still fills the defaults."""

from __future__ import annotations

import difflib
import functools
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@functools.cache
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(yaml.safe_load(SCHEMA.read_text()))


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "the config"


def did_you_mean(name: str, known) -> str:
    """'; did you mean <the closest of known>?', or '' where none is close."""
    by_lower = {k.lower(): k for k in known}  # case slips ('pndmscheduler') are typos too
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f"; did you mean {by_lower[close[0]]}?" if close else ""


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nearness(error) -> float:
    known = error.schema.get("properties", {})
    name = next((k for k in error.instance if k not in known), "")
    return max((difflib.SequenceMatcher(None, name, k).ratio() for k in known), default=0.0)


def _unknown_keys(error) -> str:
    known = sorted(error.schema.get("properties", {}))
    unexpected = [k for k in error.instance if k not in known]
    name = unexpected[0]
    where = _key(error.absolute_path)
    hint = did_you_mean(name, known) or f" (its keys: {', '.join(known)})"
    return f"{_key([*error.absolute_path, name])}: '{name}' is not a key of {where}{hint}"


def _deepest(error):
    """Of the alternatives a oneOf/anyOf tried, the error that went furthest into the value."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.message)))
    return error


def _all(errors):
    for error in errors:
        yield error
        yield from _all(error.context or [])


def schema_problem(config: dict) -> str | None:
    """One line naming the first key the schema rejects, or None. An unknown key is named before
    anything else it may explain (a misspelt `rows` is also a missing one)."""
    from jsonschema.exceptions import best_match

    errors = list(_validator().iter_errors(config))
    if not errors:
        return None
    unknown = [e for e in _all(errors) if e.validator == "additionalProperties" and isinstance(e.instance, dict)]
    if unknown:  # the deepest; of a oneOf's alternatives, the one with a key nearest the unknown one
        return _unknown_keys(max(unknown, key=lambda e: (len(e.absolute_path), _nearness(e))))
    error = _deepest(best_match(errors))
    key = _key(error.absolute_path)
    if error.validator == "required":
        return f"{key}: {error.message.split(' is a required')[0]} is required"
    if error.validator == "enum":
        close = difflib.get_close_matches(str(error.instance), [str(v) for v in error.validator_value], n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"{key}: {_short(error.instance)} is not one of {', '.join(map(str, error.validator_value))}{hint}"
    if error.validator == "type":
        return f"{key}: {_short(error.instance)} is not of type {error.validator_value}"
    if error.validator == "pattern":
        return f"{key}: {_short(error.instance)} does not match {error.validator_value}"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{key}: {message}"
