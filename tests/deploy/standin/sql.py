"""GoogleSQL scripts split into statements, and the statements the BigQuery emulator cannot run, rewritten."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

IDENT = r"`([^`]+)`|([A-Za-z_][\w.-]*)"


def split_statements(script: str) -> list[str]:
    """Top-level statements of a script (semicolons outside quotes, backticks, comments and BEGIN…END)."""
    statements, current, i, depth = [], [], 0, 0
    while i < len(script):
        ch = script[i]
        if ch in "'\"`":
            triple = script[i:i + 3] if script[i:i + 3] in ("'''", '"""') else ""
            end = script.find(triple or ch, i + len(triple or ch))
            while end != -1 and not triple and script[end - 1] == "\\":
                end = script.find(ch, end + 1)
            end = len(script) if end == -1 else end + len(triple or ch)
            current.append(script[i:end])
            i = end
            continue
        if script.startswith("--", i) or ch == "#":
            end = script.find("\n", i)
            i = len(script) if end == -1 else end
            continue
        if script.startswith("/*", i):
            end = script.find("*/", i + 2)
            i = len(script) if end == -1 else end + 2
            continue
        starts_word = i == 0 or not (script[i - 1].isalnum() or script[i - 1] == "_")
        word = re.match(r"[A-Za-z_]+", script[i:]) if starts_word else None
        if word:
            upper = word.group(0).upper()
            if upper == "BEGIN":
                depth += 1
            elif upper == "END" and depth:
                depth -= 1
            current.append(word.group(0))
            i += len(word.group(0))
            continue
        if ch == ";" and depth == 0:
            statements.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s]


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on sep outside parentheses, angle brackets and quotes."""
    parts, depth, current, quote = [], 0, [], ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        elif ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def split_at_keyword(text: str, keyword: str) -> tuple[str, str]:
    """(before, after) the first keyword outside parentheses and quotes."""
    depth, quote, i = 0, "", 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and re.match(rf"\b{keyword}\b", text[i:], re.I) and (i == 0 or not text[i - 1].isalnum()):
            return text[:i], text[i + len(keyword):].strip()
        i += 1
    return text, ""


def table_id(ref: str, project: str) -> str:
    """project.dataset.table from a (possibly two-part) reference."""
    parts = ref.replace(":", ".").split(".")
    return ".".join([project, *parts] if len(parts) == 2 else parts)


@dataclass
class Statement:
    """One classified statement; `run` is what the emulator executes instead (empty: nothing)."""

    kind: str
    text: str
    run: list[str] = field(default_factory=list)
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    role: str = ""
    if_exists: bool = False
    or_replace: bool = False
    query: str = ""


def classify(text: str, project: str) -> Statement:
    """What a statement is, and what the emulator should run for it."""
    grant = re.match(rf"\s*GRANT\s+`?([^`\s]+)`?\s+ON\s+SCHEMA\s+(?:{IDENT})\s+TO\s+(.+)$", text, re.I | re.S)
    if grant:
        members = re.findall(r"[\"']([^\"']+)[\"']", grant.group(4))
        return Statement("GRANT", text, [], table_id((grant.group(2) or grant.group(3)) + ".x", project)[:-2],
                         role=grant.group(1), members=members)
    mv = re.match(rf"\s*CREATE\s+(OR\s+REPLACE\s+)?MATERIALIZED\s+VIEW\s+(IF\s+NOT\s+EXISTS\s+)?(?:{IDENT})(.*)$",
                  text, re.I | re.S)
    if mv:
        target = table_id(mv.group(3) or mv.group(4), project)
        options, query = split_at_keyword(mv.group(5), "AS")
        labels = dict(re.findall(r"\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)", options))
        return Statement("CREATE_MATERIALIZED_VIEW", text, [f"CREATE VIEW `{target}` AS {query}"], target, labels,
                         if_exists=bool(mv.group(2)), or_replace=bool(mv.group(1)), query=query)
    drop = re.match(rf"\s*DROP\s+MATERIALIZED\s+VIEW\s+(IF\s+EXISTS\s+)?(?:{IDENT})\s*$", text, re.I | re.S)
    if drop:
        target = table_id(drop.group(2) or drop.group(3), project)
        return Statement("DROP_MATERIALIZED_VIEW", text, [f"DROP VIEW IF EXISTS `{target}`"], target,
                         if_exists=bool(drop.group(1)))
    alter = re.match(rf"\s*ALTER\s+TABLE\s+(IF\s+EXISTS\s+)?(?:{IDENT})\s+(.*)$", text, re.I | re.S)
    if alter:
        target = table_id(alter.group(2) or alter.group(3), project)
        head = text[:alter.start(4)].strip()
        clauses = split_top_level(alter.group(4))
        return Statement("ALTER_TABLE", text, [f"{head} {c}" for c in clauses], target)
    return Statement("OTHER", text, [text])
