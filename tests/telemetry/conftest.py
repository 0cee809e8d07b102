from tests.telemetry.collector import collector

__all__ = ["collector"]
