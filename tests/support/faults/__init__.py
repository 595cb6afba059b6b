"""The fault rig: a seeded flaky backend behind fault proxies, the servo as a process that is
killed and restarted, the job scenarios and how their outcome is counted."""
