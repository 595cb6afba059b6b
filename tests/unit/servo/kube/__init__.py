"""Tests of servo/kube/."""
