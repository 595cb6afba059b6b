"""List and watch job pods in one scope, resuming from the last resource version."""
