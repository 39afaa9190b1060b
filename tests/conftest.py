import os

# Nothing in the suite may touch the network: Hugging Face loads only local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from aftbench.data.splits import make_split


@pytest.fixture(scope="session")
def digits_split(tmp_path_factory):
    """A tiny real split artifact (sklearn digits; images + a dummy text field)."""
    d = tmp_path_factory.mktemp("digits")
    spec = {"loader": "sklearn_digits", "modality": "image", "n_train": 120, "n_val": 40, "n_test": 60, "split_seed": 0}
    make_split("digits", spec, str(d / "digits.npz"), str(d / "digits.json"))
    return str(d / "digits.npz")


@pytest.fixture(scope="session")
def feats(tmp_path_factory, digits_split):
    """A 12-d random-projection teacher's feature cache on the digits split."""
    from aftbench.teachers.extract import extract

    d = tmp_path_factory.mktemp("feats")
    p = d / "rp.safetensors"
    extract("rp", {"backend": "random_projection", "args": {"dim": 12}}, digits_split, str(p), str(d / "rp.json"))
    return str(p)


TEXT_ROWS = [
    ("animal", "a small furry creature that barks and wags its tail"),
    ("animal", "a large striped cat that lives in the jungle"),
    ("animal", "a bird that swims and cannot fly"),
    ("animal", "an insect that makes honey in a hive"),
    ("tool", "a device with a handle used to drive nails"),
    ("tool", "an instrument for cutting wood with a toothed blade"),
    ("tool", "a hand tool for turning screws"),
    ("tool", "a machine that drills holes in metal"),
    ("food", "a sweet baked dish made of flour and sugar"),
    ("food", "a yellow fruit with a thick peel"),
    ("food", "a hot drink brewed from roasted beans"),
    ("food", "bread topped with cheese and tomato sauce"),
]


@pytest.fixture(scope="session")
def text_tsv(tmp_path_factory):
    """A small `label<TAB>text` task: each row repeated with variations so splits are stratifiable."""
    d = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(10):
        for label, text in TEXT_ROWS:
            words = text.split()
            rng.shuffle(words)
            lines.append(f"{label}\t{' '.join(words)} {i}")
    path = d / "tiny.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def text_split(tmp_path_factory, text_tsv):
    d = tmp_path_factory.mktemp("textsplit")
    spec = {
        "loader": "tsv",
        "modality": "text",
        "args": {"path": text_tsv},
        "n_train": 60,
        "n_val": 24,
        "n_test": 36,
        "split_seed": 0,
    }
    make_split("tiny_text", spec, str(d / "t.npz"), str(d / "t.json"))
    return str(d / "t.npz")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny randomly initialised BERT saved locally: loads through exactly the code path of
    a pre-trained `hf_text` spec (AutoTokenizer/AutoModel.from_pretrained(path))."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny_bert")
    words = "a an the of dog cat tool food sweet small large bird fruit wood metal make made".split()
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n")
    BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=12,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def tiny_timm(tmp_path_factory):
    """timm's own tiny test ViT at random init, weights saved to a local file: loaded through
    the pretrained-config overlay exactly as a hub checkpoint would be."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_timm") / "test_vit.safetensors"
    save_file(timm.create_model("test_vit.r160_in1k", pretrained=False).state_dict(), str(path))
    return str(path)


def save_tiny_hf(tmp_path_factory, tiny_bert: str, models: dict) -> dict[str, str]:
    """Each of `models` (name -> callable(vocab_size) building a random-init transformers model)
    saved with save_pretrained beside the tiny BERT's tokenizer: the auto classes load each folder
    as a hub model. Returns name -> folder."""
    from transformers import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(tiny_bert)
    out = {}
    for name, build in models.items():
        d = tmp_path_factory.mktemp(f"tiny_{name}")
        torch.manual_seed(0)
        build(len(tok)).save_pretrained(d)
        tok.save_pretrained(d)
        out[name] = str(d)
    return out


def write_tiny_clip(d, embed_dim: int = 16, resize_mode: str = "shortest") -> str:
    """A tiny CLIP (both towers) at random init in open_clip's `local-dir:` layout
    (open_clip_config.json + weights): open_clip's own loader and tokenizer read it."""
    import json

    import open_clip
    from safetensors.torch import save_file

    model_cfg = {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (d / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": model_cfg,
                "preprocess_cfg": {
                    "mean": [0.48, 0.46, 0.41],
                    "std": [0.27, 0.26, 0.28],
                    "interpolation": "bicubic",
                    "resize_mode": resize_mode,
                },
            }
        )
    )
    torch.manual_seed(0)
    save_file(open_clip.CLIP(**model_cfg).state_dict(), str(d / "open_clip_model.safetensors"))
    return f"local-dir:{d}"


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory):
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, tiny_bert, tiny_timm, tiny_open_clip) -> dict[str, str]:
    """Paths of the tiny local models tests/tiny_specs.TEACHER_SPECS builds from: the tiny BERT,
    timm ViT and open_clip model, and a tiny GPT-2 (decoder) and T5 (encoder-decoder) at random
    init saved with save_pretrained beside the BERT's tokenizer (the auto classes load them as hub
    models)."""
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5Model

    lms = save_tiny_hf(
        tmp_path_factory,
        tiny_bert,
        {
            "gpt2": lambda v: GPT2LMHeadModel(GPT2Config(vocab_size=v, n_embd=12, n_layer=1, n_head=2, n_positions=64)),
            "t5": lambda v: T5Model(
                T5Config(vocab_size=v, d_model=12, d_kv=6, d_ff=16, num_layers=1, num_heads=2, decoder_start_token_id=0)
            ),
        },
    )
    return {"bert": tiny_bert, "timm": tiny_timm, "open_clip": tiny_open_clip, **lms}
