"""`servo collector` and `servo report`: the bundled backend, its page and the text report."""
