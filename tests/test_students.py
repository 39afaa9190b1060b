"""Every student arch on tiny data: features feed the head, shapes agree, training steps run."""

import pytest
import torch
import torch.nn.functional as F

from aftbench.data.splits import load_split
from aftbench.students.registry import ARCHS, build_student

ARCH_NAMES = [
    "cnn",
    "effnet_lite",
    "timm",
    "wordpiece_bag",
    "glove_bag",
    "minilm_bag",
    "hf_classifier",
    "two_tower",
    "pretrained_two_tower",
    "clip_two_tower",
]


@pytest.fixture(scope="module")
def tiny(tiny_timm, tiny_bert, tiny_open_clip):
    """One tiny stand-in per arch; hub-backed archs load tiny random-init models saved locally,
    through the same loaders as a pre-trained spec."""
    return {
        "cnn": ("image", {"width": 4, "depth": 2, "image_size": 8}),
        "effnet_lite": ("image", {"image_size": 32, "blocks": 2}),
        "timm": ("image", {"model": "test_vit.r160_in1k", "checkpoint": tiny_timm}),
        "wordpiece_bag": ("text", {"emb_dim": 8, "hidden": 8}),
        "glove_bag": ("text", {"hidden": 8}),
        "minilm_bag": ("text", {"hidden": 8}),
        "hf_classifier": ("text", {"model": tiny_bert, "max_length": 16}),
        "two_tower": ("image+text", {"width": 4, "depth": 2, "image_size": 8, "emb_dim": 8, "hidden": 8}),
        "pretrained_two_tower": ("image+text", {"blocks": 1, "image_size": 16, "hidden": 8}),
        "clip_two_tower": ("image+text", {"model": tiny_open_clip}),
    }


def test_every_arch_is_covered(tiny):
    assert set(tiny) == set(ARCHS) == set(ARCH_NAMES)


@pytest.mark.parametrize("arch", ARCH_NAMES)
def test_student_forward_and_step(arch, tiny, digits_split, text_split):
    modality, args = tiny[arch]
    split = load_split(text_split if modality == "text" else digits_split)
    torch.manual_seed(0)
    student = build_student({"arch": arch, "args": args}, split)
    assert student.modality == modality and student.n_params() > 0
    assert student.init == "scratch" or student.init.startswith("pretrained:")
    x = student.encode_inputs(split.parts["train"])
    n = len(split.parts["train"].labels)
    assert all(v.shape[0] == n for v in x.values())
    batch = {k: v[:16] for k, v in x.items()}
    logits, h = student(batch)
    assert logits.shape == (16, split.n_classes) and h.shape == (16, student.head.in_features)
    y = torch.from_numpy(split.parts["train"].labels[:16])
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = F.cross_entropy(student(batch)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # deterministic inputs: encoding twice gives the same tensors (no augmentation)
    again = student.encode_inputs(split.parts["train"])
    assert all(torch.equal(x[k], again[k]) for k in x)


def test_hub_students_load_their_weights_and_reinit_the_classifier(tiny_timm, tiny_bert, digits_split, text_split):
    """Backbone weights come from the checkpoint (identical across builds and equal to the
    file); the classifier is new and sized for this task."""
    from safetensors.torch import load_file

    split = load_split(digits_split)
    a = build_student({"arch": "timm", "args": {"model": "test_vit.r160_in1k", "checkpoint": tiny_timm}}, split)
    saved = load_file(tiny_timm)
    key = next(k for k in saved if k.startswith("patch_embed"))
    assert torch.equal(a.net.state_dict()[key], saved[key]) and a.init == "pretrained:test_vit.r160_in1k"
    assert a.head.out_features == split.n_classes
    tsplit = load_split(text_split)
    b = build_student({"arch": "hf_classifier", "args": {"model": tiny_bert}}, tsplit)
    c = build_student({"arch": "hf_classifier", "args": {"model": tiny_bert}}, tsplit)
    assert torch.equal(
        b.net.base_model.embeddings.word_embeddings.weight, c.net.base_model.embeddings.word_embeddings.weight
    )
    assert b.head.out_features == tsplit.n_classes and b.init.startswith("pretrained:")
    cut = build_student(
        {"arch": "hf_classifier", "args": {"model": tiny_bert, "config": {"num_hidden_layers": 1}}}, tsplit
    )
    assert cut.net.config.num_hidden_layers == 1 and len(cut.net.base_model.encoder.layer) == 1
    assert cut.init.endswith("(num_hidden_layers=1)")
    assert torch.equal(  # the kept layer is the pre-trained first layer
        cut.net.base_model.encoder.layer[0].attention.self.query.weight,
        b.net.base_model.encoder.layer[0].attention.self.query.weight,
    )


def test_pretrained_students_load_real_weights(digits_split):
    from aftbench.core.weights import load_lite

    split = load_split(digits_split)
    a = build_student({"arch": "effnet_lite", "args": {"image_size": 32}}, split)
    b = build_student({"arch": "effnet_lite", "args": {"image_size": 32, "blocks": 2}}, split)
    ref = load_lite("lite0", 32)  # identical backbone weights: loaded, not random
    assert torch.equal(a.trunk.net._conv_stem.weight, ref._conv_stem.weight)
    assert torch.equal(b.trunk.net._blocks[1]._depthwise_conv.weight, ref._blocks[1]._depthwise_conv.weight)
    assert a.trunk.out_dim == 1280 and b.trunk.out_dim == 24 and len(b.trunk.net._blocks) == 2
    assert b.init == "pretrained:imagenet efficientnet-lite0 (first 2 blocks)"
    assert all(m.momentum == 0.1 for m in b.modules() if isinstance(m, torch.nn.BatchNorm2d))
    twin = build_student({"arch": "effnet_lite", "args": {"image_size": 32, "pretrained": False}}, split)
    assert twin.init == "scratch" and not torch.equal(twin.trunk.net._conv_stem.weight, ref._conv_stem.weight)
    with pytest.raises(ValueError, match="blocks must be 1 ... 16"):
        build_student({"arch": "effnet_lite", "args": {"blocks": 17}}, split)


def test_minilm_bag_starts_from_minilm_input_embeddings(text_split):
    from aftbench.core.weights import minilm_word_embeddings

    split = load_split(text_split)
    s = build_student({"arch": "minilm_bag", "args": {"hidden": 8}}, split)
    table = minilm_word_embeddings()
    ids = s.tok.ids(["honey"])[0]  # MiniLM piece ids (+1), remapped to the bag's own rows
    piece = int(ids[0])
    row = int(s.remap[piece])
    assert row > 0 and s.init.startswith("pretrained:all-MiniLM-L6-v2")
    torch.testing.assert_close(s.bag.emb.weight[row], torch.from_numpy(table[piece - 1].copy()))
    texts = [t for p in split.parts.values() for t in p.texts]
    assert s.bag.emb.num_embeddings == 1 + len({i for r in s.tok.ids(texts).tolist() for i in r if i})
    twin = build_student({"arch": "minilm_bag", "args": {"hidden": 8, "pretrained": False}}, split)
    assert twin.init == "scratch" and not torch.allclose(twin.bag.emb.weight[row], s.bag.emb.weight[row])


def test_glove_bag_starts_from_glove(text_split):
    from aftbench.core.weights import load_glove

    split = load_split(text_split)
    s = build_student({"arch": "glove_bag"}, split)
    index, vectors = load_glove()
    w = "honey"
    assert w in s.vocab
    torch.testing.assert_close(s.bag.emb.weight[s.vocab[w]], torch.from_numpy(vectors[index[w]].copy()))


def test_wordpiece_maps_unseen_words_to_pieces(text_split):
    split = load_split(text_split)
    s = build_student({"arch": "wordpiece_bag", "args": {"emb_dim": 4, "hidden": 4}}, split)
    ids = s.tok.ids(["xylophonist unbelievability"])
    assert (ids > 0).sum() >= 3  # split into several known sub-words, none dropped


def test_modality_mismatch_is_named(text_split):
    split = load_split(text_split)
    with pytest.raises(ValueError, match="'cnn' needs images but dataset 'tiny_text'"):
        build_student({"arch": "cnn"}, split)


@pytest.mark.parametrize("combine,proj_dim,width", [("concat", None, 32), ("outer", None, 256), ("outer", 4, 16)])
def test_clip_two_tower_loads_both_towers_and_combines(tiny_open_clip, digits_split, combine, proj_dim, width):
    """Both towers come from the saved CLIP (weights equal to the file); h is [image, text] or
    vec(image ⊗ text) of the two embeddings, each the model's own encode_image/encode_text of
    the model's own eval transform and tokenizer."""
    from safetensors.torch import load_file

    split = load_split(digits_split)
    s = build_student(
        {"arch": "clip_two_tower", "args": {"model": tiny_open_clip, "combine": combine, "proj_dim": proj_dim}}, split
    )
    saved = load_file(tiny_open_clip.removeprefix("local-dir:") + "/open_clip_model.safetensors")
    assert torch.equal(s.net.state_dict()["visual.conv1.weight"], saved["visual.conv1.weight"])
    assert torch.equal(s.net.state_dict()["token_embedding.weight"], saved["token_embedding.weight"])
    assert s.init == f"pretrained:open_clip:{tiny_open_clip}" and s.head.in_features == width
    pool = split.parts["train"]
    x = s.encode_inputs(pool)
    assert x["image"].dtype == torch.uint8 and x["image"].shape[:2] == (len(pool.labels), 3)
    s.eval()
    with torch.no_grad():
        h = s.features({k: v[:3] for k, v in x.items()})
        img = s.img_proj(s.net.encode_image(torch.stack([s.transform(x["image"][i].float() / 255) for i in range(3)])))
        txt = s.txt_proj(s.net.encode_text(s.tokenizer([str(t) for t in pool.texts[:3]])))
    want = torch.cat([img, txt], 1) if combine == "concat" else torch.einsum("bi,bj->bij", img, txt).flatten(1)
    torch.testing.assert_close(h, want, rtol=1e-4, atol=1e-5)  # batched transform == per-image transform


def test_clip_two_tower_refuses_what_it_cannot_do(tiny_open_clip, digits_split, tmp_path):
    from conftest import write_tiny_clip

    split = load_split(digits_split)
    with pytest.raises(ValueError, match=r"student arch 'clip_two_tower': args.combine: 'sum' is not valid"):
        build_student({"arch": "clip_two_tower", "args": {"model": tiny_open_clip, "combine": "sum"}}, split)
    (tmp_path / "wide").mkdir()
    wide = write_tiny_clip(tmp_path / "wide", embed_dim=300)  # outer product 90,000-d
    with pytest.raises(ValueError, match="90000-d h; set proj_dim"):
        build_student({"arch": "clip_two_tower", "args": {"model": wide, "combine": "outer"}}, split)
    assert (
        build_student(
            {"arch": "clip_two_tower", "args": {"model": wide, "combine": "outer", "proj_dim": 8}}, split
        ).head.in_features
        == 64
    )
    (tmp_path / "longest").mkdir()
    longest = write_tiny_clip(tmp_path / "longest", resize_mode="longest")  # ResizeKeepRatio: PIL only
    with pytest.raises(ValueError, match="does not take image tensors"):
        build_student({"arch": "clip_two_tower", "args": {"model": longest}}, split)


@pytest.fixture(scope="module")
def tiny_hf_classifiers(tmp_path_factory, tiny_bert):
    """Tiny DistilBERT and GPT-2 base models (random init, save_pretrained with the tiny BERT's
    tokenizer): the sequence-classification auto class adds each architecture's own head."""
    from conftest import save_tiny_hf
    from transformers import DistilBertConfig, DistilBertModel, GPT2Config, GPT2Model

    return save_tiny_hf(
        tmp_path_factory,
        tiny_bert,
        {
            "distilbert": lambda v: DistilBertModel(
                DistilBertConfig(vocab_size=v, dim=12, n_layers=1, n_heads=2, hidden_dim=16, max_position_embeddings=64)
            ),
            "gpt2": lambda v: GPT2Model(GPT2Config(vocab_size=v, n_embd=12, n_layer=1, n_head=2, n_positions=64)),
        },
    )


@pytest.mark.parametrize("kind", ["distilbert", "gpt2"])
def test_hf_classifier_h_is_what_the_classifier_reads(kind, tiny_hf_classifiers, text_split):
    """DistilBERT's classifier reads its pre_classifier output (not the CLS state), GPT-2's score
    layer reads the last real token: h must be exactly the classifier's input for each, so the
    logits are head(h)."""
    split = load_split(text_split)
    s = build_student(
        {"arch": "hf_classifier", "args": {"model": tiny_hf_classifiers[kind], "max_length": 16}}, split
    ).eval()
    x = s.encode_inputs(split.parts["val"])
    batch = {k: v[:5] for k, v in x.items()}
    with torch.no_grad():
        logits, h = s(batch)
    assert h.shape == (5, 12) and logits.shape == (5, split.n_classes)
    torch.testing.assert_close(s.head(h), logits)
    if kind == "gpt2":  # the score layer sees every position; the logits are those of the last real token
        with torch.no_grad():
            hidden = s.net.transformer(**batch).last_hidden_state
        last = batch["attention_mask"].sum(1) - 1
        torch.testing.assert_close(h, hidden[torch.arange(5), last])
