"""Automatic certificates over ACME (RFC 8555): ordered, stored, renewed and swapped into the
live TLS contexts. manager.py is the entry; the other modules each do one job (see their
docstrings): client (the ACME protocol, on certbot's `acme` library), solvers and http01 (the
challenges), table (the live SSL contexts), storage and lock (the shared file), schedule (when),
resolver (one resolver's loop), keys (keys and certificates)."""

from .manager import AcmeManager
from .solvers import HttpTokens
from .table import CertificateTable

__all__ = ["AcmeManager", "CertificateTable", "HttpTokens"]
