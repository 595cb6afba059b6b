"""Tests of servo/report/."""
