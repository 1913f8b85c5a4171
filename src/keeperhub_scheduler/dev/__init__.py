"""The embedded mode (``keeperhub-scheduler dev``): dispatcher, executor and API in one process on
SQLite, with a live view of the runs and, for the demo and for tests, a KeeperHub stand-in."""
