"""``python -m keeperhub_scheduler.cli``: the same as the ``keeperhub-scheduler`` command."""

from keeperhub_scheduler.cli.app import main

main()
