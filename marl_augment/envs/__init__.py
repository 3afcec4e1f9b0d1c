"""Environments as PettingZoo ParallelEnvs."""
