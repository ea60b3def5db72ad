"""Maintenance: the services every JQS process runs beside its API and workers.

The rescuer brings back jobs whose worker vanished, the pruner deletes old finished jobs,
and the scheduler enqueues periodic jobs. Each takes turns with the other processes through
the store (one of them does a round's work), and each reads time from an injected clock.
"""
