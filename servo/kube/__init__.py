"""The Kubernetes API: the client, its chunked watch reader, credentials and the lease."""
