"""Which leaderboard groups a reader sees first, and which are history.

A group's *task* is what a reader chooses a method for: its dataset (and whose scans), track
(plane, factor), design (replicate keys), profile and checkpoint kind. Within a task, the
protocol of the newest run is current; a group on an older protocol is superseded, and goes to
the archive under what changed. The current ones are read in this order: the default dataset's
first, real data before simulated, methods as shipped before their config variants (a paper
table's ablations), axial before through-plane, the longest profile first, last
checkpoints before best-on-validation ones, smoke runs (plumbing checks) at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

from benchsr.config import DEFAULT_DATASET, PROFILES
from benchsr.report.tables import Group


@dataclass
class Superseded:
    group: Group
    by: Group
    changes: str            # what changed, by protocol key


def task(group: Group) -> tuple:
    p = group.protocol
    return (group.dataset, group.own_data, group.simulated, p.get("plane", "axial"),
            p.get("z_factor"), p.get("scale"), str(p.get("replicate_keys")), group.profile,
            group.checkpoint, group.variants)


def newest(group: Group) -> str:
    return max(str(r["manifest"].get("started", "")) for r in group.runs)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def changes(old: dict, new: dict) -> str:
    """What the newer protocol changed, key by key."""
    said = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            said.append(f"{key} added")
        elif key not in new:
            said.append(f"{key} dropped")
        elif old[key] != new[key]:
            said.append(f"{key} {_short(old[key])} -> {_short(new[key])}")
    return "; ".join(said) or "nothing in the protocol (a new key)"


def _rank(group: Group) -> tuple:
    profile = PROFILES.index(group.profile) if group.profile in PROFILES else -1
    return (group.profile == "smoke", group.simulated, group.variants, group.dataset != DEFAULT_DATASET,
            bool(group.own_data), group.dataset, bool(group.protocol.get("replicate_keys")),
            group.protocol.get("plane") == "through",
            group.protocol.get("z_factor") or 0, -profile, group.checkpoint != "last")


def reading_order(groups: list[Group]) -> tuple[list[Group], list[Superseded]]:
    """(the current groups in reading order, the superseded ones with what replaced them)."""
    by_task: dict[tuple, list[Group]] = {}
    for group in groups:
        by_task.setdefault(task(group), []).append(group)
    current, old = [], []
    for members in by_task.values():
        members = sorted(members, key=newest, reverse=True)
        current.append(members[0])
        old += [Superseded(g, members[0], changes(g.protocol, members[0].protocol))
                for g in members[1:]]
    return sorted(current, key=_rank), sorted(old, key=lambda s: (_rank(s.by), newest(s.group)))
