"""The small HTTP server base that the stats receiver, the ops endpoint, the collector and the
webhook share, and the ops endpoint itself."""
