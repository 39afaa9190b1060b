"""Factor transfer's own DAG step (`train_paraphraser`): an autoencoder ("paraphraser") fitted
once per (dataset, teacher set) on the training split's cached teacher features; its code on
every split ("factors") is cached and is the Φ of the `ft` penalty (aftbench.methods.ft)."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aftbench.core.io import atomic_path, write_json
from aftbench.data.splits import load_split
from aftbench.teachers.features import load_features, rms_scale


class Paraphraser(nn.Module):
    def __init__(self, d_phi: int, d_factor: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d_phi, d_factor), nn.LeakyReLU(0.1))
        self.decoder = nn.Linear(d_factor, d_phi)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def train_paraphraser(
    train_feats: np.ndarray, rate: float = 0.5, steps: int = 500, lr: float = 1e-3, batch_size: int = 128, seed: int = 0
) -> tuple[Paraphraser, dict]:
    """Reconstruction MSE on the training split only; returns the paraphraser and a summary."""
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(train_feats, np.float32))
    d_factor = max(1, int(round(rate * x.shape[1])))
    model = Paraphraser(x.shape[1], d_factor)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    first = None
    for _ in range(steps):
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
        loss = F.mse_loss(model(x[idx]), x[idx])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = F.mse_loss(model(x), x).item()
    return model.eval(), {"d_factor": d_factor, "first_batch_mse": first, "final_train_mse": final, "steps": steps}


def make_factors(
    feature_paths: list[str], teachers: list[str], split_path: str, args: dict, out_path: str, out_json: str
) -> None:
    """The `train_paraphraser` rule: fit on train features, cache factors for every split."""
    from safetensors.numpy import save_file

    split = load_split(split_path)
    cached = load_features(feature_paths, split.sha256, teachers)
    scale = rms_scale(cached.splits["train"])  # the same rescale as training
    t0 = time.time()
    model, info = train_paraphraser(
        cached.splits["train"] / scale, rate=args.get("rate", 0.5), steps=args.get("paraphraser_steps", 500)
    )
    with torch.no_grad():
        factors = {s: model.encoder(torch.from_numpy(f / scale)).numpy() for s, f in cached.splits.items()}
    with atomic_path(out_path) as tmp:
        save_file(factors, str(tmp))
    write_json(
        out_json,
        {
            **info,
            "teachers": teachers,
            "split_sha256": split.sha256,
            "args": args,
            "seconds": round(time.time() - t0, 2),
        },
    )
