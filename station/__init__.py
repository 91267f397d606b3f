"""Data station: local datasets, task execution and the MPC party."""
