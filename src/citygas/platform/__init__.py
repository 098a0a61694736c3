"""Shared kernel: settings, database, unit of work, ids, time, money, outbox, jobs, audit, tenancy,
workflows."""
