"""Checks of what users deploy: the example/ manifests and the Dockerfiles."""
