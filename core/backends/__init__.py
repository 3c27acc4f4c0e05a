"""Cluster backends: the embedded folder lab aside, each talks to a real cluster engine."""
