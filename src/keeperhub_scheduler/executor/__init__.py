"""The executor: receives runs from the transport, claims each under a lease, calls KeeperHub and
records the outcome (``worker`` is the loop, ``handle`` one delivery)."""
