"""The XML a real Pacemaker cluster printed (see pacemaker_xml/README.md), read for tests."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from core.backends.pacemaker import cib, status
from core.model import Cluster

XML = Path(__file__).parent / "pacemaker_xml"
NAMES = ("steady", "failed", "stopped_standby", "node_lost", "failed_over", "starting")


def cib_of(name: str) -> ET.Element:
    return cib.parse((XML / f"{name}.cib.xml").read_text())


def crm_mon_of(name: str) -> ET.Element:
    return status.parse_crm_mon((XML / f"{name}.crm_mon.xml").read_text())


def sources(name: str) -> status.Sources:
    return status.Sources(
        crm_mon_of(name),
        cib_of(name),
        (XML / f"{name}.cfgtool.txt").read_text(),
        status.parse_nodelist((XML / "nodelist.txt").read_text()),
    )


def cluster_of(name: str) -> Cluster:
    return status.cluster(sources(name))
