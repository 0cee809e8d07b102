"""Inboxes and schemas of earlier tcwebhook versions (see tests/inbox/test_migrations.py)."""
