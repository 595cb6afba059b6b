"""Tests of servo/webhook/."""
