"""Making a Pacemaker lab node's files and booting it (its PID 1 is ``nslab_node``).

Files are private: folders 0700, files 0600, except what a node's daemons need to read
as ``hacluster`` (Pacemaker's own folders, owned as in Debian's package) and what the
node serves itself (sshd's host key stays 0600). Host keys and the lab's client key
survive ``up``/``down``; a node's system state (CIB, logs) is made anew by every ``up``.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from core.backends.pacemaker import agents
from core.backends.pacemaker.nslab_files import (
    DATA_FOLDERS,
    FENCE_AGENT,
    LabPaths,
    corosync_conf,
    hosts_file,
    node_address,
    seed_cib,
    sshd_config,
)
from core.backends.pacemaker.nslab_proc import (
    NETNS_DIR,
    LabError,
    ProcessId,
    clean_env,
    namespace_init,
    netns_inode,
    run,
    wait_for,
)

REPO = Path(__file__).resolve().parents[3]
FENCE_AGENT_FILE = REPO / "packaging" / "ocf" / "fence" / FENCE_AGENT
# The project's own OCF agents (ocf:lkconsole:app, ocf:lkconsole:datakeeper) as
# ``lkctl cluster install-agents`` installs them, into the lab's folder, which every
# node mounts where Pacemaker looks for provider "lkconsole" (and the fence agent where
# the fencer looks for fence_*).
OCF_AGENTS_IN_NODE = str(agents.OCF_DIR)
FENCE_AGENTS_IN_NODE = str(agents.FENCE_DIR)
# Made anew by every up: the node's "system disk" beyond its configuration.
SYSTEM_STATE = ("var-lib-pacemaker", "var-lib-corosync", "var-log", "stage", "boot.log")
PACEMAKER_DIRS = ("cib", "pengine", "blackbox", "cores")


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``path`` atomically with ``mode`` from the start."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _owned_by_hacluster(path: Path, mode: int) -> None:
    account = pwd.getpwnam("hacluster")
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)


def _keygen(key: Path, comment: str) -> None:
    if not key.exists():
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            f"making the SSH key {key}",
        )


def prepare_files(paths: LabPaths, nodes: Sequence[str]) -> None:
    """Every file the nodes boot with: configuration, seeded CIB, SSH keys, data folders."""
    if not FENCE_AGENT_FILE.is_file() or not os.access(FENCE_AGENT_FILE, os.X_OK):
        raise LabError(
            f"the lab's fence agent {FENCE_AGENT_FILE} is missing or not executable:"
            " run the lab from a checkout of LK Console"
        )
    private_dir(paths.lab_dir)
    install_lab_agents(paths)
    ssh = private_dir(paths.ssh_dir)
    _keygen(ssh / "id_ed25519", "lkconsole-lab")
    client_key = (ssh / "id_ed25519.pub").read_text()
    cib = seed_cib(run(["cibadmin", "--empty"], "making an empty CIB"), nodes)
    hacluster = pwd.getpwnam("hacluster")
    known_hosts = []
    for node in nodes:
        node_dir = private_dir(paths.node_dir(node))
        for name in SYSTEM_STATE:
            target = node_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        private_dir(node_dir / "stage")
        write_private(node_dir / "hosts", hosts_file(nodes), 0o644)
        # root's shell in the node (sshd runs every command with it): not the host's
        # dotfiles, which may take their time (bash reads ~/.bashrc for sshd's commands).
        write_private(node_dir / "root-bashrc", "# LK Console's Pacemaker lab: a node's own.\n")
        corosync = private_dir(node_dir / "etc-corosync")
        write_private(corosync / "corosync.conf", corosync_conf(nodes))
        private_dir(node_dir / "var-lib-corosync")
        pacemaker = node_dir / "var-lib-pacemaker"
        pacemaker.mkdir(mode=0o755)
        for sub in PACEMAKER_DIRS:
            _owned_by_hacluster(pacemaker / sub, 0o750)
        cib_file = pacemaker / "cib" / "cib.xml"
        write_private(cib_file, cib)
        os.chown(cib_file, hacluster.pw_uid, hacluster.pw_gid)
        log = node_dir / "var-log"
        log.mkdir(mode=0o755)
        (log / "corosync").mkdir(mode=0o750)
        _owned_by_hacluster(log / "pacemaker", 0o770)
        sshd = private_dir(node_dir / "etc-ssh-lab")
        _keygen(sshd / "ssh_host_ed25519_key", f"root@{node}")
        write_private(sshd / "sshd_config", sshd_config(node))
        write_private(sshd / "authorized_keys", client_key)
        host_key = " ".join((sshd / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        known_hosts.append(f"{node},{node_address(node)} {host_key}\n")
        for folder in DATA_FOLDERS:
            private_dir(paths.data_folder(node, folder))
    write_private(ssh / "known_hosts", "".join(known_hosts))
    write_private(ssh / "config", "BatchMode yes\nStrictHostKeyChecking yes\n")


def install_lab_agents(paths: LabPaths) -> None:
    """The project's agents, installed (as on a real node) into the lab's own folders."""
    try:
        agents.install_agents(private_dir(paths.ocf_agents_dir), private_dir(paths.fence_dir))
    except agents.InstallError as exc:
        raise LabError(str(exc)) from exc
    for folder in (paths.agents_dir, paths.ocf_agents_dir, paths.fence_dir):
        folder.chmod(0o755)  # Pacemaker's daemons read them as hacluster too


def node_binds(paths: LabPaths, node: str) -> list[dict[str, object]]:
    """The bind mounts of ``node``: host source → node target."""
    node_dir = paths.node_dir(node)

    def item(source: Path, target: str, read_only: bool = False) -> dict[str, object]:
        return {"source": str(source), "target": target, "read_only": read_only}

    return [
        item(node_dir / "hosts", "/etc/hosts", read_only=True),
        item(node_dir / "etc-corosync", "/etc/corosync"),
        item(node_dir / "var-lib-corosync", "/var/lib/corosync"),
        item(node_dir / "var-lib-pacemaker", "/var/lib/pacemaker"),
        item(node_dir / "var-log", "/var/log"),
        item(node_dir / "etc-ssh-lab", "/etc/ssh/lab", read_only=True),
        item(paths.ssh_dir, "/root/.ssh", read_only=True),
        item(node_dir / "root-bashrc", "/root/.bashrc", read_only=True),
        item(
            paths.fence_dir / FENCE_AGENT, f"{FENCE_AGENTS_IN_NODE}/{FENCE_AGENT}", read_only=True
        ),
        item(paths.ocf_agents_dir, OCF_AGENTS_IN_NODE, read_only=True),
        *(item(paths.data_folder(node, f), f) for f in data_folders(paths)),
        *(item(folder, str(folder), read_only=True) for folder in console_folders()),
    ]


def data_folders(paths: LabPaths) -> tuple[str, ...]:
    """The node's folders kept in ``servers/<node>/``; in a seeded lab ``/data`` is the
    seed's mount point (a folder of the node's own root), not one of them."""
    if paths.seeded_file.exists():
        return tuple(f for f in DATA_FOLDERS if f != SEED_MOUNT_POINT)
    return DATA_FOLDERS


SEED_MOUNT_POINT = "/data"


# What a node mounts afresh (its own /tmp, /run, ...): the host's files there are hidden.
NODE_OWN = (Path("/tmp"), Path("/run"), Path("/dev"), Path("/proc"), Path("/sys"))


def console_folders() -> list[Path]:
    """The console's code and the environment of the interpreter running it, when they
    are where a node has folders of its own (a checkout in /tmp): mounted read-only at
    the same paths, so that what runs on a node (agents, a console there) finds them."""
    wanted = []
    for folder in (REPO, Path(sys.prefix).resolve()):
        if any(folder.is_relative_to(own) for own in NODE_OWN) and folder not in wanted:
            wanted.append(folder)
    return wanted


def boot(paths: LabPaths, node: str) -> ProcessId:
    """Start ``node``'s PID 1 in its namespaces, detached from us; return it once it runs."""
    node_dir = paths.node_dir(node)
    stage = node_dir / "stage"  # an empty folder: the node mounts its root there
    if stage.is_dir():
        shutil.rmtree(stage)
    private_dir(stage)
    config = node_dir / "init.json"
    write_private(
        config,
        json.dumps(
            {
                "name": node,
                "stage": str(stage),
                "switch_netns": str(NETNS_DIR / paths.switch_netns),
                "binds": node_binds(paths, node),
            },
            indent=1,
        ),
    )
    netns = paths.node_netns(node)
    inode = netns_inode(NETNS_DIR / netns)
    if inode is None:
        raise LabError(f"{node}'s network namespace {netns} is missing: run up again")
    argv = [
        "setsid", "--fork",
        "ip", "netns", "exec", netns,
        "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc",
        "--propagation", "private",
        sys.executable, "-m", "core.backends.pacemaker.nslab_node", str(config),
    ]  # fmt: skip
    log_fd = os.open(node_dir / "boot.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            env=clean_env({"PYTHONPATH": str(REPO)}),
            cwd="/",
            timeout=30,
            check=False,
        )
    finally:
        os.close(log_fd)
    if done.returncode != 0:
        raise LabError(f"cannot start {node}: see {node_dir / 'boot.log'}")
    found: list[ProcessId] = []

    def init_runs() -> bool:
        init = namespace_init(inode)
        if init is not None:
            found.append(init)
        return init is not None

    wait_for(f"{node}'s init to start (see {node_dir / 'boot.log'})", 15.0, init_runs, 0.02)
    return found[0]


def boot_log_tail(paths: LabPaths, node: str, lines: int = 5) -> str:
    try:
        text = (paths.node_dir(node) / "boot.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no boot log)"
    return " | ".join(text.strip().splitlines()[-lines:])
