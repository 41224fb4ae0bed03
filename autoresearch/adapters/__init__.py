"""What the services talk to: the database, and (elsewhere) queues, LLMs, storage and trackers."""
