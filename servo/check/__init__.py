"""`servo check`: asks the cluster, the host and the backend whether a servo would work here."""
