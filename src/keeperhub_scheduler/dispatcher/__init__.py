"""The dispatcher: decides every due occurrence exactly once and relays it to the transport."""

from keeperhub_scheduler.dispatcher.loop import Dispatcher, PassResult

__all__ = ["Dispatcher", "PassResult"]
