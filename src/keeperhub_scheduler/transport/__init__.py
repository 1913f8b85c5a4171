"""Transports between dispatcher and executor (SQS in production, the database embedded)."""
