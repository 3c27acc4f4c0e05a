"""The Pacemaker backend: a real Corosync + Pacemaker cluster, and its namespace lab."""
