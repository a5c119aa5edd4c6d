"""Workload traces: seeded generators, the project's own file format, and readers of the
published artifacts' formats. Pure data code: no roles, no configs, no logging."""
