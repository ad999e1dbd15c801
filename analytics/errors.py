"""The analytics errors: one root, so callers can tell them from driver or I/O errors."""

from __future__ import annotations


class AnalyticsError(Exception):
    """Root of every error the analytics package raises on purpose."""


class SnapshotNotFound(AnalyticsError):
    """No snapshot has been published in the snapshot directory yet."""


class SnapshotCorrupt(AnalyticsError):
    """The published manifest cannot be read or names files that are missing."""


class ExportInProgress(AnalyticsError):
    """Another export holds the snapshot directory's lock."""


class ExportCancelled(AnalyticsError):
    """The export was asked to stop (the service is shutting down); nothing was published."""


class SourceUnavailable(AnalyticsError):
    """PostgreSQL could not be reached, or its schema is not migrated."""
