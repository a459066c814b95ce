"""What the gateway tells operators about the traffic it serves: today the access log."""

from __future__ import annotations

from .access_log import AccessLog, AccessLogWriter, prepare_access_log

__all__ = ["AccessLog", "AccessLogWriter", "prepare_access_log"]
