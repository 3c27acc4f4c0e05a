"""The names of what a backend can do beyond the common set (``Backend.capabilities``).

Kept apart from :mod:`core.backend` so that a backend can name them without importing the
protocol and everything it describes.
"""

SERVER_POWER = "server_power"  # stop and start a server (a failure, and a return)
MIRROR_WRITES = "mirror_writes"  # put writes through a mirror (lkctl lab write/workload)
RESET = "reset"  # throw the cluster away and make it anew (the lab)
USERS = "users"  # the backend keeps its own users and passwords
DEPENDENCIES = "dependencies"  # Create/Delete Dependency between resources of hierarchies
# Server Properties a console can change (shutdown strategy, failover confirmation) and
# the confirmation of a failover that waits for the administrator.
SERVER_SETTINGS = "server_settings"
COMM_PATHS = "comm_paths"  # comm paths can be created and deleted from the console
COMM_PATH_FAULTS = "comm_path_faults"  # a comm path can be failed and restored (the lab)

# Resize Mirror: grow a mirror's volume on every server, then its engine.
MIRROR_RESIZE = "mirror_resize"
# ... and the real file system on top with it (Pacemaker: the hierarchy goes out of
# service while the mirror grows; the lab's filesystem resource is a folder, no size).
FILESYSTEM_GROW = "filesystem_grow"

WHAT_IF = "what_if"  # say what a plan would do to every hierarchy, changing nothing

__all__ = [
    "COMM_PATHS",
    "COMM_PATH_FAULTS",
    "DEPENDENCIES",
    "FILESYSTEM_GROW",
    "MIRROR_RESIZE",
    "MIRROR_WRITES",
    "RESET",
    "SERVER_POWER",
    "SERVER_SETTINGS",
    "USERS",
    "WHAT_IF",
]
