"""Durable event streams: the protocol server, stores and a trio client. Knows nothing of agents."""
