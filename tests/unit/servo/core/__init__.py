"""Tests of servo/core/."""
