import tcwebhook


def test_exported_members() -> None:
    """The package's public names are exactly the sorted __all__."""
    assert tcwebhook.__all__ == sorted(tcwebhook.__all__)
    for name in tcwebhook.__all__:
        assert hasattr(tcwebhook, name), name
    assert issubclass(tcwebhook.PermanentError, tcwebhook.TcwebhookError)
