"""Docker HEALTHCHECK of the keeperhub-scheduler image (Kubernetes uses its own probes instead).

Healthy when ``/healthz`` answers 200 on the health port (dispatcher, executor;
``SCHEDULER_HEALTH_PORT``, default 8080) or on the API port (``api``; ``SCHEDULER_API_PORT``,
default 8000). Standard library only: the image has nothing else to spare.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def answers(port: str) -> bool:
    url = f"http://127.0.0.1:{int(port)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


def main() -> int:
    ports = (
        os.environ.get("SCHEDULER_HEALTH_PORT", "8080"),
        os.environ.get("SCHEDULER_API_PORT", "8000"),
    )
    return 0 if any(answers(port) for port in ports) else 1


if __name__ == "__main__":
    sys.exit(main())
