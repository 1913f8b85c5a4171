"""KeeperHub schedule trigger: cron and interval schedules that fire exactly once."""

__version__ = "0.1.0"
