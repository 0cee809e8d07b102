"""The store rules, each written once against ``inbox.tx.Tx`` for both engines.

``intake``: storing events (with duplicate detection), the quarantine, prune. ``delivery``:
claims, leases, per-key FIFO, stale states, settling, replay. ``views``: the read side.
``reconcile``: reconciliation's marks, named state and leases. ``book``: the order book, kept
with each stored event (an ``intake.ON_STORED`` hook) and read back.

SQL text here is built from constant fragments and ``?`` placeholders only; every value is bound.
"""
