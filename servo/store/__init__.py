"""The local SQLite event store: `servo measure` writes it, the collector and
`servo report` read it."""
