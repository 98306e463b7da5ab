"""largebatch: replication of six papers on large mini-batch training."""
__version__ = "0.1.0"
