"""Status table at scale: 32 servers x 500 hierarchies of 3 resources each.

Measured in one run, against a plain QStandardItemModel of the same size as baseline:

- time to first paint: from building the window (which reads the store on its thread)
  to the first paint of the status table with its rows;
- one state change on the real GUI path: a real :class:`MainWindow` on a real store,
  given a snapshot in which one resource changed state, delivered as the backend's
  watch delivers it (a ``ClusterChanged`` event on the hub, then the bridge's batch,
  what its throttle timer flushes, to ``MainWindow._apply``), until the viewport has
  painted the changed cell and nothing the change caused is left to do: the model, the actions'
  availability, the properties panel, the message bar, the column widths, the
  layouts and the repaint, all on the GUI thread. The changed cell is
  scrolled into view first (outside the time), so that it is painted. Three series:
  nothing selected, the changed resource selected (the properties panel shows it), and
  another resource selected. Average and worst over every change, and the GUI thread's
  CPU time of the same changes (what the times are without the machine's other work,
  which on a shared machine can keep the GUI thread waiting for milliseconds);
- one resync progress event, published on the event hub as a resync job does, through
  the bridge's batch until the changed cell is painted, without and with the mirror's
  DataKeeper resource selected;
- no model reset, no layout change, no row removed or inserted: counted.

Not counted: reading the store and sharing the unchanged hierarchies, which the watch
does on its own thread, and the posted event that carries its event to the GUI thread
(here the event is published on the GUI thread). The first few changes of each series
are run first and not counted either: they load and render icons for the first time
(each SVG once per process); their worst is shown apart. Like ``lkconsole``, the script
freezes what the start-up made out of the garbage collector's way once the window has
painted (``gc.freeze()``).

The baseline changes one visible item's text of a QStandardItemModel in a QTreeView of
the same size, until the viewport painted it.

    .venv/bin/python benchmarks/status_model_scale.py [--servers 32] [--hierarchies 500]
        [--changes 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _summary import record
from PySide6.QtCore import QEvent, QEventLoop, QModelIndex, QObject, QRect, QTimer
from PySide6.QtGui import QPaintEvent, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QApplication, QTreeView, QWidget

from core.backends.lab.layout import ensure_lab
from core.backends.lab.store import Store
from core.events import ClusterChanged, MirrorProgress
from core.model import (
    Cluster,
    Hierarchy,
    Mirror,
    MirrorState,
    MirrorTarget,
    Resource,
    ResourceKind,
    ResourceState,
    SwitchbackType,
    share_unchanged,
)
from gui.main_window import MainWindow

SIZE = 64 << 20
GOAL_AVERAGE_S = 0.002
GOAL_WORST_S = 0.008
WARM_UP = 4  # changes of each series run first and not counted (first renders of icons)


def build_store(home: Path, servers: int, hierarchies: int) -> None:
    """The lab plus servers up to ``servers`` and hierarchies up to ``hierarchies``."""
    with Store(home) as store:
        ensure_lab(store)
        names = [s.name for s in store.servers()]
        with store.transaction() as txn:
            for i in range(len(names) + 1, servers + 1):
                txn.add_server(f"node{i:02d}")
                names.append(f"node{i:02d}")
            have = len(store.cluster().hierarchies)
            for i in range(have, hierarchies):
                home_server = names[i % len(names)]
                standbys = [names[(i + k) % len(names)] for k in (1, 2)][: 1 + i % 2]
                hid = txn.add_hierarchy(SwitchbackType.INTELLIGENT)
                app = txn.add_resource(hid, ResourceKind.APP)
                fs = txn.add_resource(hid, ResourceKind.FILESYSTEM)
                dk = txn.add_resource(hid, ResourceKind.DATAKEEPER)
                txn.set_root(hid, app)
                txn.add_dependency(app, fs)
                txn.add_dependency(fs, dk)
                for n, server in enumerate([home_server, *standbys]):
                    state = ResourceState.ISP if n == 0 else ResourceState.OSU
                    for rid, kind, tag in (
                        (app, ResourceKind.APP, f"app{i:03d}"),
                        (fs, ResourceKind.FILESYSTEM, f"/srv/data{i:03d}"),
                        (dk, ResourceKind.DATAKEEPER, f"datarep-data{i:03d}"),
                    ):
                        txn.add_instance(Resource(rid, hid, kind, server, tag, state))
                    txn.set_priority(hid, server, 1 if n == 0 else 10 * n)
                targets = tuple(
                    MirrorTarget(
                        s,
                        MirrorState.RESYNCING if i % 50 == 0 else MirrorState.TARGET,
                        bytes_done=SIZE // 3 if i % 50 == 0 else SIZE,
                        bytes_total=SIZE,
                        rate=150e6,
                        eta=30.0,
                    )
                    for s in standbys
                )
                txn.add_mirror(Mirror(dk, home_server, SIZE, 65536, 500_000, False, targets))


class FirstPaint(QObject):
    """Notes the time of the first paint of a view that has rows."""

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self.view = view
        self.at: float | None = None
        view.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            self.at is None
            and event.type() == QEvent.Type.Paint
            and self.view.model().rowCount() > 0
        ):
            self.at = time.perf_counter()
        return False


class Paints(QObject):
    """Notes the regions a widget paints (a view's viewport)."""

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self.rects: list[QRect] = []
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            assert isinstance(event, QPaintEvent)
            self.rects.extend(event.region())
        return False

    def painted(self, rect: QRect) -> bool:
        return any(r.intersects(rect) for r in self.rects)

    def forget(self) -> None:
        self.rects.clear()


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit("timed out")
        loop = QEventLoop()
        QTimer.singleShot(2, loop.quit)
        loop.exec()


class Events(QObject):
    """Counts the events the application delivers (installed on it while draining)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        self.count += 1
        return False


_events: list[Events] = []  # made once: making a QObject is not part of a change


def drain() -> None:
    """Process events until a pass over the pending events (and the timers due) finds
    none: nothing that was asked for is left to do."""
    app = QApplication.instance()
    assert app is not None
    if not _events:
        _events.append(Events())
    events = _events[0]
    app.installEventFilter(events)
    try:
        for _ in range(1000):
            events.count = 0
            app.processEvents()
            if events.count == 0:
                break
    finally:
        app.removeEventFilter(events)


def settle(ms: int = 15) -> None:
    """Let the event loop run (paints, layouts, timers) for ``ms``, then drain it: what
    one change (or the scrolling before it) left to do is not counted in the next."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    drain()


def until_painted(paints: Paints, rect: QRect, timeout_s: float = 5.0) -> None:
    """Process events until ``paints`` saw ``rect`` painted, then until nothing the
    change caused is left to do (a layout, another paint, a zero timer): all of it is
    in the time."""
    deadline = time.perf_counter() + timeout_s
    app = QApplication.instance()
    assert app is not None
    while not paints.painted(rect):
        if time.perf_counter() > deadline:
            raise SystemExit(f"the changed cell {rect} was never painted")
        app.processEvents()
    drain()


def show_cell(view: QTreeView, index: QModelIndex) -> QRect:
    """Scroll ``index`` into view; its rectangle in the viewport."""
    view.scrollTo(index)
    settle()
    rect = view.visualRect(index)
    if not rect.intersects(view.viewport().rect()):
        raise SystemExit(f"cannot scroll to {index.row()}, {index.column()}")
    return rect


def baseline_first_paint(rows: int, columns: int) -> float:
    start = time.perf_counter()
    model = QStandardItemModel(0, columns)
    root = model.invisibleRootItem()
    for r in range(rows // 3):
        top = [QStandardItem(f"app{r:03d}")] + [QStandardItem("Active") for _ in range(columns - 1)]
        root.appendRow(top)
        parent = top[0]
        for child in ("fs", "dk"):
            row = [QStandardItem(f"{child}{r}")] + [
                QStandardItem("Standby") for _ in range(columns - 1)
            ]
            parent.appendRow(row)
            parent = row[0]
    view = QTreeView()
    view.setUniformRowHeights(True)
    view.setModel(model)
    painted = FirstPaint(view)
    view.resize(1024, 768)
    view.show()
    view.expandAll()
    wait_for(lambda: painted.at is not None)
    elapsed = painted.at - start
    view.close()
    baseline_first_paint.keep = (model, view)  # type: ignore[attr-defined]
    return elapsed


def baseline_change_costs(n: int, columns: int) -> list[float]:
    """A visible item's text changed, until the viewport painted it."""
    model, view = baseline_first_paint.keep  # type: ignore[attr-defined]
    view.show()
    settle()
    costs = []
    rng = random.Random(1)
    paints = Paints(view.viewport())
    for _ in range(n):
        item = model.item(rng.randrange(model.rowCount()), 1 + rng.randrange(columns - 1))
        rect = show_cell(view, item.index())
        paints.forget()
        t0 = time.perf_counter()
        item.setText("Failed" if item.text() != "Failed" else "Active")
        until_painted(paints, rect)
        costs.append(time.perf_counter() - t0)
    view.close()
    return costs


class Structure:
    """Counts what must not happen for a state change."""

    def __init__(self, *models: object) -> None:
        self.count = 0
        self.cells = 0
        for model in models:
            for signal in ("modelReset", "layoutChanged", "rowsInserted", "rowsRemoved"):
                getattr(model, signal).connect(self._bad)
        models[0].dataChanged.connect(self._cell)  # type: ignore[attr-defined]

    def _bad(self, *args: object) -> None:
        self.count += 1

    def _cell(self, *args: object) -> None:
        self.cells += 1


class Changes:
    """Snapshots in which one resource changed state, as the watcher would read them."""

    def __init__(self, cluster: Cluster, seed: int) -> None:
        self.current = cluster
        self.rng = random.Random(seed)

    def next(self, keep: int | None = None) -> tuple[Cluster, Hierarchy, str]:
        """The next snapshot, the hierarchy that changed (as in it) and the server."""
        while True:
            index = self.rng.randrange(len(self.current.hierarchies))
            if self.current.hierarchies[index].id != keep:
                break
        h = self.current.hierarchies[index]
        server = h.servers[0]  # the root on its best-priority server: Active <-> Failed
        old = h.instance(h.root_id, server)
        assert old is not None
        state = ResourceState.ISP if old.state is ResourceState.OSF else ResourceState.OSF
        resources = tuple(
            dataclasses.replace(r, state=state) if r is old else r for r in h.resources
        )
        hierarchies = list(self.current.hierarchies)
        hierarchies[index] = dataclasses.replace(h, resources=resources)
        # What the watcher thread delivers: unchanged hierarchies are the same objects.
        self.current = share_unchanged(
            self.current, Cluster(self.current.servers, tuple(hierarchies))
        )
        return self.current, self.current.hierarchies[index], server


def deliver(window: MainWindow, snapshot: Cluster) -> None:
    """As the watch's event arrives, then the bridge's throttle timer fires."""
    window.hub.publish(ClusterChanged(cluster=snapshot))
    window.bridge.flush()


def panel_row(window: MainWindow, section: str, label: str) -> str:
    """The value of row ``label`` in ``section`` of the properties panel."""
    tree = window.properties_panel.tree
    current = ""
    for i in range(tree.topLevelItemCount()):
        item = tree.topLevelItem(i)
        if item.isFirstColumnSpanned():
            current = item.text(0)
        elif current == section and item.text(0) == label:
            return item.text(1)
    raise SystemExit(f"no row {label!r} in {section!r} of the properties panel")


def state_change_costs(
    window: MainWindow, changes: Changes, n: int, select: str
) -> tuple[list[float], list[float]]:
    """Wall and GUI-thread CPU times; ``select``: "none", "changed" (the changed
    resource) or "other" (another one)."""
    view = window.tree
    model, proxy = window.model, window.proxy
    keep = None
    if select == "other":
        other = changes.current.hierarchies[len(changes.current.hierarchies) // 2]
        keep = other.id
        view.select_resource(other.id, other.root_id)
    elif select == "none":
        view.clear_selection()
    settle()
    costs, cpu = [], []
    paints = Paints(view.viewport())
    for _ in range(n):
        before = changes.current
        snapshot, h, server = changes.next(keep)
        if select == "changed":
            view.select_resource(h.id, h.root_id)
        rect = show_cell(view, proxy.mapFromSource(model.index_for(h.id, h.root_id, server)))
        paints.forget()
        t0, c0 = time.perf_counter(), time.thread_time()
        deliver(window, snapshot)
        until_painted(paints, rect)
        costs.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        assert model.hierarchy(h.id) is h, "the change did not reach the model"
        assert before is not snapshot
        if select == "changed":
            shown = panel_row(window, "State per server", server)
            wanted = h.instance(h.root_id, server).state.cell_text
            assert shown.startswith(wanted), (shown, wanted)
    return costs, cpu


def progress_costs(
    window: MainWindow, cluster: Cluster, n: int, select: bool
) -> tuple[list[float], list[float]]:
    """One resync progress event each, published on the hub as a resync job does: wall
    and GUI-thread CPU times."""
    view = window.tree
    model, proxy = window.model, window.proxy
    resyncing = [
        (h, m, t)
        for h in cluster.hierarchies
        for m in h.mirrors
        for t in m.targets
        if t.state is MirrorState.RESYNCING
    ]
    done: dict[tuple[str, str], int] = {}
    costs, cpu = [], []
    paints = Paints(view.viewport())
    for i in range(n):
        h, m, t = resyncing[i % len(resyncing)]
        tag = h.instance(m.resource_id, m.source).tag
        shown = model.hierarchy(h.id).mirror(m.resource_id).target(t.server)
        bytes_done = done.get((tag, t.server), shown.bytes_done) + SIZE // 100
        done[(tag, t.server)] = bytes_done
        if select:
            view.select_resource(h.id, m.resource_id)
        else:
            view.clear_selection()
        rect = show_cell(view, proxy.mapFromSource(model.index_for(h.id, m.resource_id, t.server)))
        paints.forget()
        event = MirrorProgress(tag, t.server, bytes_done, SIZE, 150e6, 20.0)
        t0, c0 = time.perf_counter(), time.thread_time()
        window.hub.publish(event)
        window.bridge.flush()  # what the bridge's throttle timer does
        until_painted(paints, rect)
        costs.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        live = model.hierarchy(h.id).mirror(m.resource_id).target(t.server)
        assert live.bytes_done == bytes_done, "the progress did not reach the model"
        if select:
            percent = window.properties_panel.rows()["Progress"]
            assert percent.startswith(f"{live.percent} %"), percent
    return costs, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=32)
    parser.add_argument("--hierarchies", type=int, default=500)
    parser.add_argument("--changes", type=int, default=200, help="per series")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        os.environ["LKCONSOLE_HOME"] = str(home)
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")
        t0 = time.perf_counter()
        build_store(home, args.servers, args.hierarchies)
        built = time.perf_counter() - t0
        with Store(home) as store:
            t0 = time.perf_counter()
            snapshot = store.cluster()
            read = time.perf_counter() - t0
        rows = sum(len(h.resource_ids()) for h in snapshot.hierarchies)
        columns = 1 + len(snapshot.servers)

        base_paint = baseline_first_paint(rows, columns)
        start = time.perf_counter()
        window = MainWindow()
        painted = FirstPaint(window.tree)
        window.resize(1024, 768)
        window.show()
        wait_for(
            lambda: painted.at is not None and window.model.rowCount() == len(snapshot.hierarchies)
        )
        first_paint = painted.at - start
        cluster = window.model.cluster()
        assert cluster is not None
        settle(300)
        # As gui/app.py does once the window has painted: what the start-up made is
        # moved out of the later collections' way.
        gc.freeze()

        watch = Structure(window.model, window.proxy)
        changes = Changes(cluster, seed=2)
        # The first changes of each series are not counted: they render icons for the
        # first time (each SVG once per process), shown apart as the warm-up.
        warm: list[float] = []
        series: dict[str, list[float]] = {}
        change_cpu: list[float] = []
        for select in ("none", "changed", "other"):
            costs, cpu = state_change_costs(window, changes, WARM_UP + args.changes, select)
            warm.extend(costs[:WARM_UP])
            series[select] = costs[WARM_UP:]
            change_cpu.extend(cpu[WARM_UP:])
        change = [c for costs in series.values() for c in costs]
        cells_per_change = watch.cells / (len(change) + len(warm))
        progress: dict[bool, list[float]] = {}
        progress_cpu: list[float] = []
        for selected in (False, True):
            costs, cpu = progress_costs(window, changes.current, WARM_UP + args.changes, selected)
            warm.extend(costs[:WARM_UP])
            progress[selected] = costs[WARM_UP:]
            progress_cpu.extend(cpu[WARM_UP:])
        every_progress = [c for costs in progress.values() for c in costs]
        bad = watch.count
        window.close()
        base_change = baseline_change_costs(WARM_UP + args.changes, columns)[WARM_UP:]
    del app

    def ms(values: list[float], how: str = "avg") -> str:
        value = statistics.fmean(values) if how == "avg" else max(values)
        return f"{value * 1000:.2f} ms"

    def ratio(values: list[float], how: str = "avg") -> str:
        if how == "avg":
            return f"{statistics.fmean(values) / statistics.fmean(base_change):.1f}x"
        return f"{max(values) / max(base_change):.1f}x"

    def goal_rows(what: str, values: list[float]) -> list[tuple[str, ...]]:
        avg, worst = statistics.fmean(values), max(values)
        return [
            (
                f"{what}, average",
                ms(base_change),
                ms(values),
                ratio(values),
                f"<= {GOAL_AVERAGE_S * 1000:.0f} ms",
                "yes" if avg <= GOAL_AVERAGE_S else "NO",
            ),
            (
                f"{what}, worst",
                ms(base_change, "max"),
                ms(values, "max"),
                ratio(values, "max"),
                f"<= {GOAL_WORST_S * 1000:.0f} ms",
                "yes" if worst <= GOAL_WORST_S else "NO",
            ),
        ]

    def detail(what: str, values: list[float]) -> tuple[str, ...]:
        return (f"  {what}: average / worst", "", f"{ms(values)} / {ms(values, 'max')}", "", "", "")

    n = len(change)
    rows_out = [
        (
            f"first paint ({args.servers} servers x {args.hierarchies} hierarchies, {rows} rows)",
            f"{base_paint * 1000:.0f} ms",
            f"{first_paint * 1000:.0f} ms",
            f"{first_paint / base_paint:.2f}x",
            "<= 1000 ms",
            "yes" if first_paint <= 1.0 else "NO",
        ),
        *goal_rows(f"one state change, snapshot to painted cell ({n} changes)", change),
        detail("nothing selected", series["none"]),
        detail("the changed resource selected", series["changed"]),
        detail("another resource selected", series["other"]),
        detail("the GUI thread's CPU time of all of them", change_cpu),
        *goal_rows(
            f"one resync progress event, hub to painted cell ({len(every_progress)} events)",
            every_progress,
        ),
        detail("nothing selected", progress[False]),
        detail("its DataKeeper resource selected", progress[True]),
        detail("the GUI thread's CPU time of all of them", progress_cpu),
        (
            "resets, layout changes, rows added/removed",
            "",
            str(bad),
            "",
            "0",
            "yes" if bad == 0 else "NO",
        ),
        (
            f"(warm-up: the first {WARM_UP} of each series, not counted above), worst",
            "",
            ms(warm, "max"),
            "",
            "",
            "",
        ),
        ("cells reported changed per state change", "", f"{cells_per_change:.1f}", "", "", ""),
        (
            f"(machine: 1-min load average before / after, {os.cpu_count()} cores)",
            "",
            f"{load_before:.1f} / {os.getloadavg()[0]:.1f}",
            "",
            "",
            "",
        ),
        (
            "(store: build / read one snapshot)",
            "",
            f"{built:.1f} s / {read * 1000:.0f} ms",
            "",
            "",
            "",
        ),
    ]
    _print_table(rows_out)
    met = (
        first_paint <= 1.0
        and statistics.fmean(change) <= GOAL_AVERAGE_S
        and max(change) <= GOAL_WORST_S
        and statistics.fmean(every_progress) <= GOAL_AVERAGE_S
        and max(every_progress) <= GOAL_WORST_S
        and bad == 0
    )
    return 0 if met else 1


def _print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("measure", "baseline (QStandardItemModel)", "ours", "ratio", "goal", "met")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    print(f"status_model_scale.py, Python {sys.version.split()[0]}")
    for row in rows:
        if row[4]:  # a row with a goal goes in benchmarks/run_all.py's table too
            record(row[0], row[1], row[2], row[3], row[4], row[5] == "yes")
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
