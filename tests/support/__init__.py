"""What the tests share: servers to start, a fake ERP, test PKI, PostgreSQL, and waiting for a condition.

Test modules import from here, not from conftest files or from each other; conftest files only
turn these into fixtures.
"""
