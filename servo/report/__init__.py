"""Hand events to the backend: the durable outbox and the reporter that drains it."""
