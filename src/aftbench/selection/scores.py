"""The two teacher-selection steps of the DAG: `score` (every transferability score of one teacher
set on one dataset, from its cached training features; aftbench.selection.transferability) and `select` (an
adaptive block's Snakemake checkpoint: rank the candidates' scores and keep the top k). Neither
reads the validation or test split: selection must never see what the results are judged on."""

from __future__ import annotations

import time

from aftbench.core.io import read_json, write_json
from aftbench.core.schema import defaults
from aftbench.data.splits import load_split
from aftbench.selection.adaptive import SelectRequest, selected_sets
from aftbench.selection.transferability import SCORE_NAMES, rank_sets, transferability
from aftbench.teachers.features import load_features


def score_teacher_set(
    dataset: str,
    teacher_set: str,
    teachers: list[str],
    split_path: str,
    feature_paths: list[str],
    options: dict,
    out_json: str,
) -> dict:
    """Score one teacher set (its teachers' cached features, concatenated as training sees them)
    on the training split of `dataset`; writes and returns the record."""
    settings = {**defaults("scores"), **options}
    t0 = time.time()
    split = load_split(split_path)
    cached = load_features(feature_paths, split.sha256, teachers)
    try:
        result = transferability(cached.splits["train"], split.parts["train"].labels, **settings)
    except ValueError as err:
        raise ValueError(f"cannot score teacher set {teacher_set!r} on {dataset!r}: {err}") from None
    record = {
        "dataset": dataset,
        "teacher_set": teacher_set,
        "teachers": teachers,
        "teachers_pretrained": cached.pretrained,
        "split_sha256": split.sha256,
        "split": "train",
        "settings": settings,
        **result,
        "total_seconds": round(time.time() - t0, 3),
    }
    write_json(out_json, record)
    return record


def select_teacher_sets(request: dict, score_paths: list[str], out_json: str, teacher_sets: dict | None = None) -> dict:
    """Rank the request's candidates by its score and keep the top_k; writes the selection with
    every score it ranked and the sets the block trains on (`trained`: the top k, and their union
    if asked, named from `teacher_sets`, aftbench.selection.adaptive.related_sets). A score file of
    another dataset or set, or one computed on another split, is refused, naming it."""
    scores, split_sha = {}, set()
    for path in score_paths:
        rec = read_json(path)
        if rec.get("dataset") != request["dataset"] or rec.get("teacher_set") not in request["candidates"]:
            raise ValueError(
                f"{path}: scores teacher set {rec.get('teacher_set')!r} on {rec.get('dataset')!r}, not a candidate "
                f"of this selection ({request['candidates']} on {request['dataset']!r}); delete it to rescore"
            )
        missing = [s for s in SCORE_NAMES if s not in rec.get("scores", {})]
        if missing:
            raise ValueError(f"{path}: lacks score(s) {missing}; delete it to rescore")
        scores[rec["teacher_set"]] = rec["scores"]
        split_sha.add(rec["split_sha256"])
    absent = [c for c in request["candidates"] if c not in scores]
    if absent:
        raise ValueError(f"selection on {request['dataset']!r}: no scores for candidate(s) {absent}")
    if len(split_sha) > 1:
        raise ValueError(
            f"selection on {request['dataset']!r}: the candidates were scored on different splits "
            f"({sorted(s[:12] for s in split_sha)}); rescore them (delete results/scores/dataset~{request['dataset']})"
        )
    ranking = rank_sets(scores, request["by"], list(request["candidates"]))
    selected = ranking[: request["top_k"]]
    req = SelectRequest(**{**request, "candidates": tuple(request["candidates"])})
    sets = teacher_sets or {c: [c] for c in request["candidates"]}
    record = {
        **request,
        "ranking": ranking,
        "selected": selected,
        "trained": selected_sets({"teacher_sets": sets}, req, selected),
        "scores": scores,
        "split_sha256": split_sha.pop(),
    }
    write_json(out_json, record)
    return record
