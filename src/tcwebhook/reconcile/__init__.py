"""Reconciliation against the Tradecloud polling API (``tcwebhook reconcile``, ``[reconcile]``)."""

from tcwebhook.reconcile.background import BackgroundReconciler, ReconcileMetrics, check_reconcile_options
from tcwebhook.reconcile.reconciler import Gap, Reconciler, Report

__all__ = ["BackgroundReconciler", "Gap", "ReconcileMetrics", "Reconciler", "Report", "check_reconcile_options"]
