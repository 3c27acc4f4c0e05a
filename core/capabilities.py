"""The names of what a backend can do beyond the common set (``Backend.capabilities``).

Kept apart from :mod:`core.backend` so that a backend can name them without importing the
protocol and everything it describes.
"""

SERVER_POWER = "server_power"  # stop and start a server (a failure, and a return)
MIRROR_WRITES = "mirror_writes"  # put writes through a mirror (lkctl lab write/workload)
RESET = "reset"  # throw the cluster away and make it anew (the lab)
USERS = "users"  # the backend keeps its own users and passwords
WHAT_IF = "what_if"  # say what a plan would do to every hierarchy, changing nothing

__all__ = ["MIRROR_WRITES", "RESET", "SERVER_POWER", "USERS", "WHAT_IF"]
