"""The `compress` middleware's configuration (its implementation: middlewares/compress.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ...base import ConfigModel, Size
from ...registry import declare

Coding = Literal["br", "zstd", "gzip", "deflate"]
DEFAULT_EXCLUDED = (
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic",
    "video/*", "audio/*", "font/woff", "font/woff2",
    "application/zip", "application/gzip", "application/x-gzip", "application/zstd",
    "application/x-bzip2", "application/x-xz", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/octet-stream", "application/grpc*",
)  # fmt: skip


class CompressConfig(ConfigModel):
    algorithms: tuple[Coding, ...] = Field(default=("br", "zstd", "gzip", "deflate"), min_length=1)
    min_length: Size = Field(
        default=1024, description="Bodies shorter than this (by Content-Length) stay as they are."
    )
    excluded_content_types: tuple[str, ...] = DEFAULT_EXCLUDED
    gzip_level: int = Field(default=6, ge=1, le=9, description="zlib level for gzip and deflate.")
    brotli_quality: int = Field(default=4, ge=0, le=11)
    zstd_level: int = Field(default=3, ge=1, le=22)

    @field_validator("algorithms")
    @classmethod
    def _unique(cls, value: tuple[Coding, ...]) -> tuple[Coding, ...]:
        if len(set(value)) != len(value):
            raise ValueError("each algorithm may be listed once")
        return value

    @field_validator("excluded_content_types")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(item.strip().lower() for item in value)


declare("middleware", "compress", config=CompressConfig, impl="middlewares.compress")
