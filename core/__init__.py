"""LK Console core: the cluster domain, with no Qt anywhere below this package."""
