"""What the processes say about themselves: JSON logs, Prometheus metrics, and the small HTTP
server for ``/healthz``, ``/readyz`` and ``/metrics``."""
