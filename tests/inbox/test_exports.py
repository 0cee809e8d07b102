import tcwebhook.dispatch
import tcwebhook.inbox
from tcwebhook.inbox import Inbox, SqliteInbox


class TestExports:
    """The inbox and dispatch packages export exactly their sorted __all__."""

    def test_sorted_and_present(self) -> None:
        for module in (tcwebhook.inbox, tcwebhook.dispatch):
            assert module.__all__ == sorted(module.__all__)
            for name in module.__all__:
                assert hasattr(module, name), name

    def test_sqlite_inbox_is_an_inbox(self) -> None:
        assert issubclass(SqliteInbox, Inbox)

    def test_postgres_inbox_is_an_inbox(self) -> None:
        from tcwebhook.inbox.postgres import PostgresInbox

        assert issubclass(PostgresInbox, Inbox)
