"""The certificates a configuration serves, for `a3s_gateway_tls_certs_not_after{cn,sans}`."""

from __future__ import annotations

from dataclasses import dataclass

from ...compiler.ir import IRGraph
from ...compiler.schema import EntrypointConfig

__all__ = ["CertInfo", "read_certs"]


@dataclass(frozen=True, slots=True)
class CertInfo:
    cn: str
    sans: str  # the DNS and IP subject alternative names, comma-separated, as Traefik labels them
    not_after: float  # Unix time


def read_certs(ir: IRGraph) -> list[CertInfo]:
    """The certificates of the entrypoints' TLS settings (blocking: call it from a thread), one
    per (cn, sans): two files naming the same hosts (a copy, a renewal beside the old one) would
    be two samples with the same labels, which makes Prometheus reject the whole scrape; the one
    that expires first is kept, as it is the one to alert on. A file that cannot be read is
    skipped: loading TLS reports it."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    paths = sorted(
        {
            cert.cert_file
            for node in ir.by_kind("entrypoint")
            if isinstance(node.config, EntrypointConfig) and node.config.tls is not None
            for cert in node.config.tls.all_certificates()
        }
    )
    out: dict[tuple[str, str], CertInfo] = {}
    for path in paths:
        try:
            with open(path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
        except (OSError, ValueError):
            continue
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
            sans += [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            sans = []
        info = CertInfo(cn, ",".join(sans), cert.not_valid_after_utc.timestamp())
        known = out.get((info.cn, info.sans))
        if known is None or info.not_after < known.not_after:
            out[info.cn, info.sans] = info
    return list(out.values())
