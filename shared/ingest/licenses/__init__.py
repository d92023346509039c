"""Sourcegraph license keys: the wire format and signatures (`keys`), and their verification (`verifier`)."""
