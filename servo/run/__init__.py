"""`servo run`: the daemon's assembly (watch -> measure -> outbox -> POST -> reported mark),
standby, pod marks, the stats receiver and intake, health and metrics."""
