"""One-line teacher specs of config.yaml (`timm:...`, `open_clip:...`, `hf:...`) as the
{backend, args} mappings aftbench.teachers.registry.BACKENDS builds from. Light (no torch): the
workflow expands specs while it builds the DAG."""

from __future__ import annotations


def parse_spec(entry: str | dict) -> dict:
    """A teacher entry of config.yaml as {backend, args}. One-line forms:
    `timm:<name.tag>`, `open_clip:<arch>/<tag>` (image tower) or `open_clip:<arch>/<tag>:text`,
    `hf:<model id or folder>` or `hf:<id>#<pooling>` (pooling: cls | mean | last_token | encoder_mean)."""
    if isinstance(entry, dict):
        return entry
    backend, sep, rest = entry.partition(":")
    if not sep or not rest:
        raise ValueError(f"teacher spec {entry!r}: expected BACKEND:NAME (timm:, open_clip:, hf:) or a mapping")
    if backend == "timm":
        return {"backend": "timm", "args": {"model": rest}}
    if backend == "hf":
        model, _, pooling = rest.partition("#")
        return {"backend": "hf", "args": {"model": model, **({"pooling": pooling} if pooling else {})}}
    if backend == "open_clip":
        modality = "image"
        for tower in ("image", "text"):
            if rest.endswith(f":{tower}"):
                rest, modality = rest[: -len(tower) - 1], tower
        if rest.startswith(("local-dir:", "hf-hub:")):
            arch, tag = rest, None
        else:
            arch, _, tag = rest.partition("/")
        return {"backend": "open_clip", "args": {"arch": arch, "pretrained": tag or None, "modality": modality}}
    raise ValueError(
        f"teacher spec {entry!r}: unknown backend {backend!r} for a one-line spec; "
        f"use timm:, open_clip: or hf:, or a mapping with `backend:`"
    )
