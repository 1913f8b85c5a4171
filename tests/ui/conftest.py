from tests.management.world import any_database_url, any_engine, engine

__all__ = ["any_database_url", "any_engine", "engine"]
