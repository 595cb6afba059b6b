"""Tests of servo/system/."""
