"""The throw-away PostgreSQL cluster now lives in ``tests.support.postgres``; these names stay for older imports."""

from __future__ import annotations

from tests.support.postgres import APP_USER, PASSWORD, USER, PgCluster, new_cluster

__all__ = ["APP_USER", "PASSWORD", "USER", "PgCluster", "new_cluster"]
