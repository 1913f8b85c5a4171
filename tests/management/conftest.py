from tests.management.world import any_client, any_database_url, any_engine, client, engine

__all__ = ["any_client", "any_database_url", "any_engine", "client", "engine"]
