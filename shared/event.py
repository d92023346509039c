"""The telemetry v2 event's shape as plain data: its declared fields and value limits.

Both functions use it: ingest validates against these limits (`shared.ingest.schema`,
`shared.ingest.checks`), the sink maps declared fields to columns and keeps the rest in `extra`.
"""

from __future__ import annotations

import re

NAME_RULE = re.compile(r"^[a-z][a-zA-Z\-.]+\Z")  # feature and action
NAME_MAX = 64
ID_MAX = 128
STR_MAX = 4096  # optional string fields (client name, billing product, marketing URLs, ...)
VERSION_MAX = 256  # source.server.version
INT_TEXT = re.compile(r"^-?[0-9]{1,19}\Z")  # int64 in proto3 JSON may be a decimal string
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

# Declared fields: name -> sub-tree for nested objects, None for leaves (maps count as leaves).
FIELDS: dict[str, dict | None] = {
    "id": None,
    "timestamp": None,
    "feature": None,
    "action": None,
    "source": {"server": {"version": None}, "client": {"name": None, "version": None}},
    "parameters": {
        "version": None,
        "metadata": None,
        "legacyMetadata": None,
        "privateMetadata": None,
        "billingMetadata": {"product": None, "category": None},
    },
    "user": {"userId": None, "anonymousUserId": None, "samsExternalId": None},
    "featureFlags": {"flags": None},
    "marketingTracking": {
        "url": None, "firstSourceUrl": None, "cohortId": None, "referrer": None, "lastSourceUrl": None,
        "deviceSessionId": None, "sessionReferrer": None, "sessionFirstUrl": None,
    },
    "interaction": {"traceId": None, "interactionId": None, "geolocation": {"countryCode": None}},
}


def leaf_names(path: str) -> frozenset[str]:
    """The leaf field names of the object at a dotted path, e.g. leaf_names("source.client")."""
    node: dict | None = FIELDS
    for part in path.split("."):
        node = node[part] if node else None
    return frozenset(k for k, v in (node or {}).items() if v is None)


Node = tuple[frozenset, tuple, tuple]


def _compile(tree: dict) -> Node:
    """(known keys, ((key, keys) of leaf-only objects), ((key, node) of deeper objects))."""
    leaves = tuple((k, frozenset(v)) for k, v in tree.items() if v is not None and all(x is None for x in v.values()))
    deeper = tuple((k, _compile(v)) for k, v in tree.items() if v is not None and k not in dict(leaves))
    return frozenset(tree), leaves, deeper


KNOWN = _compile(FIELDS)


def unknown_fields(value: dict, known: Node = KNOWN) -> dict:
    """Fields of value that the event schema does not declare, nested under their parents."""
    keys, leaves, deeper = known
    extra = {} if value.keys() <= keys else {k: v for k, v in value.items() if k not in keys}
    for key, leaf_keys in leaves:
        item = value.get(key)
        if type(item) is dict and not item.keys() <= leaf_keys:
            extra[key] = {k: v for k, v in item.items() if k not in leaf_keys}
    for key, node in deeper:
        item = value.get(key)
        if type(item) is dict and (nested := unknown_fields(item, node)):
            extra[key] = nested
    return extra


# For has_unknown_fields: (key, its keys, ((child, the child's keys), ...)) of every object at the top level.
# FIELDS nests objects two levels deep at most (source.server, parameters.billingMetadata, ...); a test pins it.
_TOP_KEYS = frozenset(FIELDS)
_OBJECTS = tuple((key, frozenset(tree), tuple((child, frozenset(sub)) for child, sub in tree.items() if sub))
                 for key, tree in FIELDS.items() if tree)


def has_unknown_fields(event: dict) -> bool:
    """Whether unknown_fields(event) would find any, without building them (ingest asks it of every event)."""
    if not event.keys() <= _TOP_KEYS:
        return True
    for key, keys, children in _OBJECTS:
        item = event.get(key)
        if type(item) is dict:
            if not item.keys() <= keys:
                return True
            for child, child_keys in children:
                sub = item.get(child)
                if type(sub) is dict and not sub.keys() <= child_keys:
                    return True
    return False
