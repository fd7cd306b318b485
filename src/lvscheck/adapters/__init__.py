"""Adapters: where check results go (the kernel IPVS table, ...)."""
