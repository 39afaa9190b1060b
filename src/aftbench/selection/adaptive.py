"""Adaptive sweep blocks (`teacher_sets: {select: {candidates, by, top_k, union}}`): the selection
each makes per dataset (a `SelectRequest`, named by a digest of what it selects from and how),
the teacher sets it trains on once its selection file exists (the top k and, if asked, their
union), and the selections made so far. aftbench.sweep.expand expands the runs; the workflow's
checkpoint (aftbench.selection.scores.select_teacher_sets) writes the selections."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aftbench.core.io import read_json
from aftbench.core.layout import selection_path
from aftbench.core.schema import defaults

UNION_SEP = "+"  # joins teacher-set ids into the id of their union (a selection's union)


class SelectionFileError(ValueError):
    """A selection file that aftbench did not write, or that selects outside its candidates."""


def is_adaptive(block: dict) -> bool:
    """A block whose teacher sets are selected by score (`teacher_sets: {select: ...}`)."""
    return isinstance(block.get("teacher_sets"), dict)


def block_teacher_sets(block: dict) -> list[str]:
    """The teacher sets a block names: its list, or an adaptive block's candidates."""
    ts = block.get("teacher_sets", [])
    return list(ts["select"]["candidates"]) if isinstance(ts, dict) else list(ts)


@dataclass(frozen=True)
class SelectRequest:
    """One adaptive block's selection on one dataset: score every candidate, keep the top_k."""

    dataset: str
    candidates: tuple[str, ...]
    by: str
    top_k: int
    union: bool

    @property
    def digest(self) -> str:
        """Names the selection's file: the same request in two sweeps or blocks is one selection."""
        key = json.dumps([self.dataset, list(self.candidates), self.by, self.top_k, self.union])
        return hashlib.sha256(key.encode()).hexdigest()[:8]

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "candidates": list(self.candidates),
            "by": self.by,
            "top_k": self.top_k,
            "union": self.union,
        }


def select_request(block: dict, dataset: str) -> SelectRequest:
    sel = {**defaults("select"), **block["teacher_sets"]["select"]}
    return SelectRequest(dataset, tuple(sel["candidates"]), sel["by"], int(sel["top_k"]), bool(sel["union"]))


def selection_requests(config: dict, sweep: str | None = None) -> list[SelectRequest]:
    """Every selection the sweep's adaptive blocks make, one per (block, dataset), deduplicated."""
    out = {}
    for b in config["sweeps"][sweep or config["sweep"]]:
        if is_adaptive(b):
            for d in b["datasets"]:
                r = select_request(b, d)
                out.setdefault(r.digest, r)
    return list(out.values())


def scored_sets(config: dict, sweep: str | None = None) -> list[tuple[str, str]]:
    """The (dataset, teacher set) pairs the sweep scores: every set a block trains on or selects
    from (scores cost seconds; the report correlates them with the students' accuracy)."""
    pairs = set()
    for b in config["sweeps"][sweep or config["sweep"]]:
        for d in b["datasets"]:
            pairs.update((d, ts) for ts in block_teacher_sets(b))
    return sorted(pairs)


def union_set(config: dict, sets: list[str]) -> str:
    """The id of the union of several teacher sets (their teachers in order, each once): a
    configured set with exactly those teachers (in any order) if there is one, else the ids
    joined by `+`."""
    members = {t for ts in sets for t in config["teacher_sets"][ts]}
    for ts, listed in config["teacher_sets"].items():
        if set(listed) == members and len(listed) == len(members):
            return ts
    return UNION_SEP.join(sets)


def related_sets(config: dict, request: SelectRequest) -> dict[str, list[str]]:
    """The configured teacher sets made only of the request's candidates' teachers: all that
    `union_set` can name (the selection step records the sets it trains with these)."""
    pool = {t for c in request.candidates for t in config["teacher_sets"][c]}
    return {ts: list(m) for ts, m in config["teacher_sets"].items() if set(m) <= pool}


def adaptive_bound(config: dict, block: dict) -> list[tuple[str, str]]:
    """Every (dataset, teacher set) an adaptive block could train on: each candidate, and each
    configured set that is the union of two or more of them (union_set), for the checks that must
    hold whatever is selected."""
    out = []
    for d in block["datasets"]:
        r = select_request(block, d)
        out += [(d, c) for c in r.candidates]
        if r.union:
            for ts, members in related_sets(config, r).items():
                parts = [c for c in r.candidates if set(config["teacher_sets"][c]) <= set(members)]
                if ts not in r.candidates and len(parts) >= 2 and union_set(config, parts) == ts:
                    out.append((d, ts))
    return out


def selected_sets(config: dict, request: SelectRequest, selected: list[str]) -> list[str]:
    """The teacher sets an adaptive block trains on, given its selection: the top_k, then their
    union if asked (unless the union is one of them)."""
    out = list(selected)
    if request.union and len(selected) >= 2:
        u = union_set(config, [c for c in request.candidates if c in selected])  # candidate order: one id per union
        if u not in out:
            out.append(u)
    return out


def known_selections(config: dict, sweep: str | None = None) -> dict[str, list[str]]:
    """The selections of the sweep's adaptive blocks that have been made (their files exist):
    request digest -> the selected teacher-set ids."""
    out = {}
    for r in selection_requests(config, sweep):
        path = selection_path(r.dataset, r.digest)
        try:
            selected = list(read_json(path)["selected"])
        except FileNotFoundError:
            continue
        except (KeyError, TypeError, ValueError) as err:
            raise SelectionFileError(
                f"{path}: not a selection aftbench wrote ({err}); delete it to redo the selection"
            ) from None
        stray = [ts for ts in selected if ts not in r.candidates]
        if stray or not selected:
            raise SelectionFileError(
                f"{path}: selects {stray or 'nothing'}, not among its candidates {list(r.candidates)}; "
                f"delete it to redo the selection"
            )
        out[r.digest] = selected
    return out


def union_members(config: dict, teacher_set: str) -> list[str] | None:
    """The teachers of a union id (`a+b`, union_set) that is not a configured set, else None."""
    if teacher_set in config["teacher_sets"] or UNION_SEP not in teacher_set:
        return None
    return list(dict.fromkeys(t for ts in teacher_set.split(UNION_SEP) for t in config["teacher_sets"][ts]))
