"""KeeperHub's side of a run: the client for ``POST /api/workflow/{id}/execute`` and the HTTP
connection pool under it."""
