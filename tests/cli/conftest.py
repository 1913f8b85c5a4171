from tests.management.world import any_client, client, engine

__all__ = ["any_client", "client", "engine"]
