"""Tests of servo/local/."""
