"""What a servo process reads and sets up at start: its configuration from the environment,
logging, and the private files it writes."""
