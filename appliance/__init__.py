"""Cairn: an S3-compatible, erasure-coded object store."""

__version__ = "0.1.0"
