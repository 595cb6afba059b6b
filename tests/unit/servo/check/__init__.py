"""Tests of servo/check/."""
