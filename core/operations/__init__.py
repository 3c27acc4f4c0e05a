"""The console's operations, backend-neutral: request → defaults → checks → plan → apply.

Each module takes a :class:`~core.backend.Backend` (never a particular one): it gathers
the facts the rules need (``core.facts.gather``), runs the pure rules (``core.rules``),
builds a :class:`~core.plan.Plan` of typed steps and hands it to ``backend.apply``. The
permission table is consulted first (and again by the backend).
"""
