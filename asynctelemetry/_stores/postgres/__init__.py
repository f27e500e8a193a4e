"""PostgresStore's parts: store (the service), schema, reads, writer, retention, rollup.

The shared rules (filters, rollup plans, retention parsing) live one level up, in ``_stores``.
"""
