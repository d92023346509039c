"""License CLI for operators and tests: keygen, issue, inspect."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import orjson

from shared.ingest.licenses.keys import (
    SOURCEGRAPH_PRODUCTION_PUBLIC_KEY,
    LicenseFormatError,
    decode_license,
    load_authorized_keys,
    parse_authorized_keys,
    signature_valid,
)
from tools.cli import dispatch
from tools.signing import encode_license, generate_private_key, load_private_key, private_key_pem, public_key_line


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def keygen(args: argparse.Namespace) -> int:
    """Write DIR/license-key (private, mode 600) and DIR/license-key.pub (authorized_keys line)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / "license-key", out / "license-key.pub"
    if private.exists() and not args.force:
        print(f"{private} exists; pass --force to replace it", file=sys.stderr)
        return 1
    key = generate_private_key(args.type)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_pem(key))
    public.write_text(public_key_line(key.public_key()) + "\n")
    print(public)
    return 0


def issue(args: argparse.Namespace) -> int:
    """Print a signed license key in Sourcegraph's format."""
    key = load_private_key(Path(args.key))
    now = datetime.now(UTC)
    expires = (
        datetime.combine(date.fromisoformat(args.expires), time(), UTC)
        if args.expires
        else now + timedelta(days=365)
    )
    info: dict = {
        "v": args.format_version,
        "n": list(secrets.token_bytes(8)),
        "t": [t for t in (args.tags or "").split(",") if t],
        "u": args.users,
        "e": _rfc3339(expires),
    }
    if args.format_version >= 3:
        info["c"] = _rfc3339(now)
    if args.sf_sub_id:
        info["sf_sub_id"] = args.sf_sub_id
    print(encode_license(info, key, args.signature_format))
    return 0


def inspect(args: argparse.Namespace) -> int:
    """Print the info, whether the signature verifies, and the fingerprint; exit 1 if it does not."""
    try:
        lic = decode_license(args.key)
    except LicenseFormatError as exc:
        print(f"not a license key: {exc}", file=sys.stderr)
        return 2
    if args.public_key:
        keys, against = load_authorized_keys(Path(args.public_key)), args.public_key
    else:
        keys, against = parse_authorized_keys(SOURCEGRAPH_PRODUCTION_PUBLIC_KEY), "sourcegraph-production"
    verified = any(signature_valid(lic, k) for k in keys)
    report = {
        "info": lic.info,
        "signatureFormat": lic.sig_format,
        "verified": verified,
        "verifiedAgainst": against,
        "fingerprint": lic.fingerprint,
    }
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0 if verified else 1


def parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m tools.licenses", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True)
    k = sub.add_parser("keygen", help="write a license signing key pair")
    k.add_argument("--out", required=True, help="directory for license-key and license-key.pub")
    k.add_argument("--type", choices=("rsa", "ed25519"), default="rsa")
    k.add_argument("--force", action="store_true", help="replace an existing key pair")
    k.set_defaults(run=keygen)
    i = sub.add_parser("issue", help="sign and print a license key")
    i.add_argument("--key", required=True, help="private key written by keygen")
    i.add_argument("--tags", default="", help="comma-separated tags, e.g. dev,plan:enterprise-1")
    i.add_argument("--users", type=int, default=10)
    i.add_argument("--expires", help="YYYY-MM-DD (default: one year from now)")
    i.add_argument("--sf-sub-id", help="Salesforce subscription id")
    i.add_argument("--format-version", type=int, choices=(1, 2, 3), default=3)
    i.add_argument("--signature-format", choices=("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"),
                   help="RSA keys only (default rsa-sha2-512)")
    i.set_defaults(run=issue)
    s = sub.add_parser("inspect", help="decode a license key and check its signature")
    s.add_argument("key")
    s.add_argument("--public-key", help="authorized_keys file (default: Sourcegraph's production key)")
    s.set_defaults(run=inspect)
    return p


if __name__ == "__main__":
    sys.exit(dispatch(parser()))
