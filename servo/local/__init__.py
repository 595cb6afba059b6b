"""`servo measure`: runs one command under a local cgroup and reports its figures."""
