"""Tests that need real cgroups (root, cgroup v1 controllers writable): the `cgroup` marker."""
