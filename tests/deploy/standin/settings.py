"""The stand-in's configurable behaviours (SOURCES.md cites the documentation of each)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields


@dataclass
class Settings:
    """Behaviours that hurt operators; each is a command-line option of `python -m tests.deploy.standin`."""

    eventarc_retention_seconds: int = 86400  # Eventarc's push subscriptions keep messages 24 h
    recreate_trigger_on_update: bool = True  # a deploy with eventTrigger in the update mask recreates it
    build_iam_delay_seconds: float = 1.0  # a build within this long after its account was created/granted fails
    build_iam_failing_builds: int = 0  # ... or, counted rather than timed (a slow machine cannot outrun it): the
    # first this many builds by each build account fail
    binding_iam_delay_seconds: float = 0.0  # a binding naming an account created this recently fails
    new_account_refusals_per_service: int = 0  # ... and counted: each service refuses a new account's first this
    # many bindings (Pub/Sub, Resource Manager, BigQuery apart)
    agent_unready_uses: int = 1  # a new service agent's first this many uses fail (its grants still propagate)
    table_updates_per_window: int = 5  # table metadata update operations per table ...
    table_update_window_seconds: float = 10.0  # ... per this many seconds
    project_number_base: int = 100000000000  # project numbers are this plus a hash of the project id

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One --option per field."""
        for f in fields(cls):
            kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "bool": bool}[f.type]
            flag = "--" + f.name.replace("_", "-")
            if kind is bool:
                parser.add_argument(flag, type=lambda v: v.lower() in ("1", "true", "yes"), default=f.default)
            else:
                parser.add_argument(flag, type=kind, default=f.default)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """Settings from parsed options."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})

    def to_argv(self) -> list[str]:
        """These settings as command-line options."""
        return [f"--{f.name.replace('_', '-')}={getattr(self, f.name)}" for f in fields(self)]
