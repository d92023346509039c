"""Proto3 JSON field names: the snake_case originals are read as the camelCase JSON names.

A protobuf-based instance may write `feature_flags`, `user_id`, `legacy_metadata`, … (proto3 JSON parsers
accept both spellings). They are renamed to the camelCase names before validation, so they land in their
columns and go through the privacy policy; both spellings of one field in one object is refused.
"""

from __future__ import annotations

import re

from shared.event import FIELDS

Node = tuple[dict[str, str], frozenset[str], tuple[tuple[str, "Node"], ...]]


def snake_case(name: str) -> str:
    """featureFlags -> feature_flags."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _has_aliases(tree: dict) -> bool:
    return any(snake_case(k) != k or (v is not None and _has_aliases(v)) for k, v in tree.items())


def _compile(tree: dict) -> Node:
    """(snake -> camel here, the snake names, the children whose subtree has any snake name to rename)."""
    aliases = {snake_case(k): k for k in tree if snake_case(k) != k}
    nested = tuple((k, _compile(v)) for k, v in tree.items() if v is not None and _has_aliases(v))
    return aliases, frozenset(aliases), nested


CANONICAL = _compile(FIELDS)


class DuplicateField(ValueError):
    """A field given under both its names."""


def camel_case(event: dict, node: Node = CANONICAL) -> dict:
    """The event with declared snake_case names renamed (the same object when there is none)."""
    aliases, names, nested = node
    out = event
    if not names.isdisjoint(event):  # the common case (camelCase only) costs one C-level pass
        for snake in [k for k in event if k in aliases]:
            camel = aliases[snake]
            if camel in event:
                raise DuplicateField(f"{camel} is given twice (also as {snake})")
            if out is event:
                out = dict(event)
            out[camel] = out.pop(snake)
    for key, child in nested:
        value = out.get(key)
        if type(value) is dict:
            renamed = camel_case(value, child)
            if renamed is not value:
                if out is event:
                    out = dict(event)
                out[key] = renamed
    return out
