from tests.management.world import engine

__all__ = ["engine"]
