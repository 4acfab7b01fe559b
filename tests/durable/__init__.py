"""Durable runs across real processes: leases held while a process lives, and fencing."""
