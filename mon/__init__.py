"""The monitor sidecar: reads a job pod's cgroup after the job exits and hands the figures on.

It never imports `servo`; the stats it sends are described in `mon.wire`.
"""

__version__ = "0.1.0"
