"""Tests of servo/run/."""
