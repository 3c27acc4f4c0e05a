"""The rules of DOMAIN.md as pure functions: no I/O, no backend.

Each rule takes the :class:`~core.model.Cluster` snapshot, the request, and the
:class:`~core.facts.Facts` gathered beforehand (what a probe said about the servers'
disks); the ``needs(...)`` functions say which facts a rule will ask for. The same rule
serves the lab, a Pacemaker cluster and a test.
"""
