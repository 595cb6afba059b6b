"""Job runtime monitor servo: watches batch-job pods and reports one measurement per job."""

__version__ = "0.1.0"
