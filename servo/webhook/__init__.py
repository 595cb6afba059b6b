"""`servo webhook`: the admission webhook that adds the monitor and the finalizer guard."""
