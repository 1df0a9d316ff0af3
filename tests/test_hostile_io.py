"""Hostile files and folders around the benchmark's inputs and outputs: one case per problem.

* data fingerprints hash contents, not paths: a data file rewritten in place is refused by
  a checkpoint (and by ``mmenv train --resume`` and a re-run of ``mmenv compare``) made
  before; an identical copy in another folder is accepted;
* every load failure of an SB3 zip or an agent file is a package error naming the file,
  and network sizes are bounded before anything is built;
* atomic writes keep the umask's mode; a read-only output folder is one line for
  ``mmenv train``, ``compare`` and ``bench``; ``batch_budget=10**9`` and ``log_dir=''`` are
  refused at construction.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from mmenv.agents import make_policy

from mmenv import DUSEnv
from mmenv.checkpoint import CheckpointError, DataMismatchError, UnsafeCheckpointError
from mmenv.cli import main
from mmenv.datasets import make_dataset
from mmenv.datasets.base import data_fingerprint
from mmenv.datasets.features import save_features
from mmenv.errors import InvalidArgumentError, MMEnvError, WriteError

SMALL = dict(n_train=64, n_val=16, n_test=32)
TRAIN_ARGS = ["--epochs", "1", "--batch-budget", "8", "--no-progress"]


# ---------------------------------------------------------------- data sets on disk
def _features(root: Path, seed: int = 0, n: int = 48) -> Path:
    """A small HDF5 feature data set: ``root/train.h5`` and ``root/test.h5``."""
    rng = np.random.default_rng(seed)
    for split, rows in (("train", n), ("test", n // 2)):
        labels = np.arange(rows) % 3
        arrays = {"a": rng.normal(size=(rows, 5)).astype(np.float32) + labels[:, None],
                  "b": rng.normal(size=(rows, 4)).astype(np.float32)}
        save_features(root / f"{split}.h5", arrays, labels)
    return root


def _rewrite_h5_in_place(path: Path, keep_times: bool = True) -> None:
    """Change one feature value inside the file itself (same inode, same size, same labels);
    with ``keep_times`` the modification time is put back as it was."""
    import h5py

    before = path.stat()
    with h5py.File(path, "r") as f:   # where the value lies (contiguous layout), its row width
        offset, width, value = f["a"].id.get_offset(), f["a"].shape[1], float(f["a"][1, 0])
    with open(path, "r+b") as fh:     # a plain in-place write, as any tool editing the file would do
        fh.seek(offset + width * 4)
        fh.write(np.float32(value + 10.0).tobytes())
    if keep_times:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert after.st_ino == before.st_ino and after.st_size == before.st_size


def _features_env(root: Path, **kwargs) -> DUSEnv:
    return DUSEnv(dataset="features", dataset_kwargs={"root": str(root)}, epochs=1, batch_budget=8, **kwargs)


def test_hdf5_fingerprint_is_of_contents_not_location(tmp_path):
    a = _features(tmp_path / "a")
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    fp_a = data_fingerprint(make_dataset("features", root=str(a)))
    assert data_fingerprint(make_dataset("features", root=str(b))) == fp_a   # identical copy: same
    _rewrite_h5_in_place(a / "train.h5")
    assert data_fingerprint(make_dataset("features", root=str(a))) != fp_a   # rewritten in place: other


def test_checkpoint_refuses_a_file_rewritten_in_place_and_accepts_a_copy(tmp_path):
    a = _features(tmp_path / "a")
    env = _features_env(a)
    env.reset(seed=0)
    env.step(env.uniform_action())
    env.save_checkpoint(str(tmp_path / "run.ckpt"))
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    moved = _features_env(copy)
    moved.load_checkpoint(str(tmp_path / "run.ckpt"))   # an identical copy in another folder: accepted
    assert moved.iteration == env.iteration
    _rewrite_h5_in_place(a / "train.h5")
    with pytest.raises(DataMismatchError, match="other data") as info:
        _features_env(a).load_checkpoint(str(tmp_path / "run.ckpt"))
    text = str(info.value)
    assert str(a / "train.h5") in text and "'features'" in text and "identical copy" in text


def test_fingerprints_of_the_path_hashing_scheme_are_not_compared(tmp_path):
    """Checkpoints written before contents were hashed hold an unprefixed fingerprint of paths:
    it cannot be compared with one of contents, so they load as checkpoints without one did."""
    from mmenv.checkpoint import atomic_save, load
    from mmenv.datasets.base import FINGERPRINT_VERSION, fingerprints_differ

    env = DUSEnv(epochs=1, batch_budget=8, dataset_kwargs=SMALL)
    env.reset(seed=0)
    state = env.state_dict()
    assert state["config"]["data_fingerprint"].startswith(FINGERPRINT_VERSION)
    state["config"]["data_fingerprint"] = "0123456789abcdef"      # the earlier scheme's layout
    atomic_save(state, tmp_path / "old.ckpt")
    DUSEnv(epochs=1, batch_budget=8, dataset_kwargs=SMALL).load_state_dict(load(tmp_path / "old.ckpt"))
    assert not fingerprints_differ(None, "c1-x") and fingerprints_differ("c1-a", "c1-b")


def _media_fingerprint(root: Path) -> str:
    return data_fingerprint(make_dataset("crema-d", root=str(root), frame_size=16, n_fft=64, hop_length=32,
                                         seconds=0.2, sample_rate=8000))


def test_media_fingerprint_hashes_wav_and_jpeg_bytes(tmp_path):
    from test_media_datasets import CREMA_D_CLASSES, make_av_tree, write_jpeg, write_wav

    train = [(f"10{i:02d}_IEO_{CREMA_D_CLASSES[i % 6]}_HI", CREMA_D_CLASSES[i % 6]) for i in range(12)]
    test = [(f"20{i:02d}_IEO_{CREMA_D_CLASSES[i % 6]}_LO", CREMA_D_CLASSES[i % 6]) for i in range(6)]
    root = make_av_tree(tmp_path / "crema", "AudioWAV", "Image-01-FPS", train, test)
    fp = _media_fingerprint(root)
    shutil.copytree(root, tmp_path / "copy")
    assert _media_fingerprint(tmp_path / "copy") == fp
    clip = train[3][0]
    write_wav(root / "AudioWAV" / f"{clip}.wav", freq=999.0)          # same length, other samples
    after_wav = _media_fingerprint(root)
    assert after_wav != fp
    write_jpeg(root / "Image-01-FPS" / clip / "frame_00001.jpg", 77)  # another frame image
    assert _media_fingerprint(root) not in (fp, after_wav)


def test_in_memory_fingerprint_sees_sampled_rows_and_dtype_cheaply():
    from mmenv.datasets.base import FINGERPRINT_ROWS, sampled_rows, tensor_dataset

    x = torch.randn(500, 3)
    y = torch.arange(500) % 2

    def fp(xa: torch.Tensor) -> str:
        return data_fingerprint(tensor_dataset("t", ({"a": xa, "b": xa}, y), ({"a": xa, "b": xa}, y)))

    rows = sampled_rows(500)
    assert len(rows) == FINGERPRINT_ROWS and np.array_equal(rows, sampled_rows(500))   # seeded: stable
    changed = x.clone()
    changed[int(rows[5]), 0] += 1.0
    assert fp(changed) != fp(x) and fp(x.clone()) == fp(x)


# ---------------------------------------------------------------- resume paths
def test_train_resume_refuses_changed_data_and_accepts_a_moved_copy(tmp_path, capsys):
    data = _features(tmp_path / "data")
    out = tmp_path / "out"
    args = ["train", "--agent", "reinforce", "--episodes", "1", "--out", str(out), "--dataset", "features",
            *TRAIN_ARGS]
    assert main([*args, "--dataset-kwargs", json.dumps({"root": str(data)})]) == 0
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    assert main([*args, "--resume", "--dataset-kwargs", json.dumps({"root": str(moved)})]) == 0
    capsys.readouterr()
    _rewrite_h5_in_place(data / "train.h5")
    assert main([*args, "--resume", "--dataset-kwargs", json.dumps({"root": str(data)})]) == 2
    err = capsys.readouterr().err
    assert "other data" in err and str(data / "train.h5") in err and "Traceback" not in err


def test_damaged_train_checkpoint_is_one_line(tmp_path, capsys):
    from mmenv.checkpoint import atomic_save, load

    out = tmp_path / "out"
    args = ["train", "--agent", "reinforce", "--episodes", "1", "--out", str(out), *TRAIN_ARGS,
            "--dataset-kwargs", json.dumps(SMALL)]
    assert main(args) == 0
    state = load(out / "train.ckpt")
    del state["records"]
    atomic_save(state, out / "train.ckpt")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "cannot load training checkpoint" in err and str(out / "train.ckpt") in err and "Traceback" not in err


def _compare_cfg(root: Path, out: Path):
    from mmenv.experiments.config import config_from_dict

    return config_from_dict({"policies": ["uniform"], "learners": ["baseline"], "datasets": ["features"],
                             "seeds": [0], "env": {"epochs": 1, "batch_budget": 8},
                             "dataset_kwargs": {"features": {"root": str(root)}}, "workers": 1, "plots": False,
                             "tensorboard": False, "out": str(out)})


def test_compare_rerun_over_changed_data_refuses(tmp_path):
    from mmenv.experiments.compare import run_comparison

    data = _features(tmp_path / "data")
    cfg = _compare_cfg(data, tmp_path / "out")
    first = run_comparison(cfg, progress=False)
    assert first.status_counts == {"ok": 1} and first.results[0]["data_fingerprint"]
    again = run_comparison(cfg, progress=False)          # same data: reused
    assert again.executed == [] and again.skipped == first.executed
    _rewrite_h5_in_place(data / "train.h5")
    with pytest.raises(DataMismatchError, match="finished run") as info:
        run_comparison(cfg, progress=False)
    assert "--force" in str(info.value) and str(data / "train.h5") in str(info.value)
    forced = run_comparison(cfg, force=True, progress=False)   # the documented way out
    assert forced.executed == first.executed


def test_bench_reuse_goes_through_the_same_check(tmp_path):
    """``mmenv bench`` reads finished runs with ``load_results`` (its default checks the data)."""
    from mmenv.experiments.grid import RunSpec, execute_run
    from mmenv.experiments.report import load_results, write_result

    data = _features(tmp_path / "data")
    spec = RunSpec(dataset="features", learner="baseline", policy="uniform", seed=0,
                   env={"epochs": 1, "batch_budget": 8}, dataset_kwargs={"root": str(data)})
    result = execute_run(spec)
    assert result["status"] == "ok"
    write_result(tmp_path / "runs", result)
    assert spec.key in load_results(tmp_path / "runs", [spec.key])
    _rewrite_h5_in_place(data / "train.h5")
    with pytest.raises(DataMismatchError):
        load_results(tmp_path / "runs", [spec.key])
    assert spec.key in load_results(tmp_path / "runs", [spec.key], check_data=False)


# ---------------------------------------------------------------- agent files
@pytest.fixture(scope="module")
def sb3_zip(tmp_path_factory) -> Path:
    import gymnasium as gym
    from mmenv.agents.sb3 import save_sb3_model
    from stable_baselines3 import PPO

    env = gym.make("mmenv/DUS-v0", epochs=1, batch_budget=8, dataset_kwargs=SMALL)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, policy_kwargs={"net_arch": [8]})
    return save_sb3_model(model, tmp_path_factory.mktemp("sb3") / "good.zip")


def _rewrite_zip(good: Path, out: Path, edit) -> Path:
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            blob = edit(item.filename, zin.read(item.filename))
            if blob is not None:
                zout.writestr(item, blob)
    return out


def _edit_data(change):
    def edit(name: str, blob: bytes) -> bytes:
        if name != "data":
            return blob
        data = json.loads(blob)
        change(data)
        return json.dumps(data).encode()
    return edit


class _Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickled_pth_entry_inside_an_sb3_zip_is_refused_and_never_runs(sb3_zip, tmp_path, capsys):
    marker = tmp_path / "marker"

    def evil(name: str, blob: bytes) -> bytes:
        if name != "policy.pth":
            return blob
        buf = io.BytesIO()
        torch.save({"weights": _Marker(str(marker))}, buf)
        return buf.getvalue()

    crafted = _rewrite_zip(sb3_zip, tmp_path / "crafted.zip", evil)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load SB3 agent") as info:
        make_policy(str(crafted))
    assert str(crafted) in str(info.value) and "weights_only" not in str(info.value)
    assert not marker.exists()
    code = main(["evaluate", "--policy", str(crafted), "--out", str(tmp_path / "ev"), *TRAIN_ARGS,
                 "--dataset-kwargs", json.dumps(SMALL)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(crafted) in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize("case", ["policy_class_int", "spaces_missing", "no_weights", "truncated", "empty"])
def test_malformed_or_truncated_sb3_zip_is_a_checkpoint_error_naming_the_file(sb3_zip, tmp_path, case):
    from mmenv.agents.across_runs import TrainedAgent
    from mmenv.agents.sb3 import load_sb3_model

    path = tmp_path / f"{case}.zip"
    if case == "policy_class_int":
        _rewrite_zip(sb3_zip, path, _edit_data(lambda d: d.__setitem__("policy_class", 5)))
    elif case == "spaces_missing":
        _rewrite_zip(sb3_zip, path, _edit_data(lambda d: d.pop("observation_space")))
    elif case == "no_weights":
        _rewrite_zip(sb3_zip, path, lambda name, blob: None if name == "policy.pth" else blob)
    elif case == "truncated":
        raw = sb3_zip.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    else:
        path.write_bytes(b"")
    for load in (load_sb3_model, make_policy, TrainedAgent.load):
        with pytest.raises(MMEnvError) as info:
            load(str(path))
        assert str(path) in str(info.value)


def test_oversized_net_arch_is_refused_before_building(sb3_zip, tmp_path):
    from mmenv.agents.safe_load import MAX_LAYER_WIDTH
    from mmenv.agents.sb3 import load_sb3_model

    path = _rewrite_zip(sb3_zip, tmp_path / "huge.zip",
                        _edit_data(lambda d: d["policy_kwargs"].__setitem__("net_arch", [10 ** 9])))
    with pytest.raises(CheckpointError, match=rf"net_arch\[0\] must be an int in \[1, {MAX_LAYER_WIDTH}\]"):
        load_sb3_model(path)
    wide = _rewrite_zip(sb3_zip, tmp_path / "wide.zip",
                        _edit_data(lambda d: d["policy_kwargs"].__setitem__("net_arch", [4000] * 3)))
    with pytest.raises(CheckpointError, match="parameters"):
        load_sb3_model(wide)
    # Within the bounds the network is built: then the saved weights (for net_arch [8]) do not fit it.
    edited = _rewrite_zip(sb3_zip, tmp_path / "edited.zip",
                          _edit_data(lambda d: d["policy_kwargs"].__setitem__("net_arch", [16, 16])))
    with pytest.raises(CheckpointError, match="state_dict.*Missing key"):
        load_sb3_model(edited)
    assert load_sb3_model(sb3_zip).policy.mlp_extractor.policy_net[0].out_features == 8


@pytest.fixture(scope="module")
def reinforce_state(tmp_path_factory) -> dict:
    from mmenv.agents import ReinforcePolicy

    env = DUSEnv(epochs=1, batch_budget=8, dataset_kwargs=SMALL)
    obs, _ = env.reset(seed=0)
    policy = ReinforcePolicy(seed=0)
    policy.reset(env)
    policy.act(obs, {})
    path = tmp_path_factory.mktemp("rf") / "agent.pt"
    policy.save(path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("case", ["hidden_huge", "hidden_str", "config_missing", "seed_missing", "weights_wrong",
                                  "truncated"])
def test_damaged_reinforce_agent_is_a_checkpoint_error_naming_the_file(reinforce_state, tmp_path, case):
    from mmenv.agents import ReinforcePolicy

    state = {**reinforce_state, "config": dict(reinforce_state["config"])}
    path = tmp_path / "agent.pt"
    if case == "hidden_huge":
        state["config"]["hidden"] = 10 ** 9
    elif case == "hidden_str":
        state["config"]["hidden"] = "big"
    elif case == "config_missing":
        del state["config"]
    elif case == "seed_missing":
        del state["config"]["seed"]
    elif case == "weights_wrong":
        state["state_dict"] = {"x": torch.zeros(2)}
    torch.save(state, path)
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as info:
        ReinforcePolicy.load(path)
    assert str(path) in str(info.value)
    if case.startswith("hidden"):
        assert "config.hidden" in str(info.value)


# ---------------------------------------------------------------- writes and folders
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_mode(tmp_path, mask, mode):
    from mmenv.atomic import atomic_write_text
    from mmenv.checkpoint import atomic_save

    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "results.csv", "a,b\n")
        atomic_save({"x": 1}, tmp_path / "agent.pt")
    finally:
        os.umask(old)
    for name in ("results.csv", "agent.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


@pytest.fixture
def read_only_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except OSError:
        pass
    else:
        ro.chmod(0o755)
        pytest.skip("this user can write into a 0555 folder (root)")
    yield ro
    ro.chmod(0o755)


@pytest.mark.parametrize("command", [["train", "--agent", "reinforce", *TRAIN_ARGS], ["compare", "--config", "tiny"],
                                     ["bench", "--preset", "quick"]])
@pytest.mark.parametrize("where", ["inside", "itself"])
def test_read_only_out_is_one_line_for_train_compare_bench(read_only_dir, capsys, command, where):
    out = read_only_dir / "new" if where == "inside" else read_only_dir
    with pytest.raises(SystemExit) as info:
        main([*command, "--out", str(out)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert "cannot create files there" in err and str(out) in err


@pytest.mark.parametrize("command", [["train", "--agent", "reinforce", *TRAIN_ARGS], ["compare", "--config", "tiny"],
                                     ["bench", "--preset", "quick"]])
def test_unwritable_out_is_one_line_even_as_root(tmp_path, monkeypatch, capsys, command):
    """The same check where chmod does not bind (root): the folder reported unwritable by the OS."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == tmp_path else real_access(p, mode, **kw))
    with pytest.raises(SystemExit) as info:
        main([*command, "--out", str(tmp_path / "new")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err and "cannot create files there" in err


def test_run_comparison_into_a_read_only_folder_is_a_write_error(read_only_dir):
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import load_config

    with pytest.raises(WriteError, match="cannot create files there"):
        run_comparison(load_config("tiny", overrides={"out": str(read_only_dir / "c")}), progress=False)


def test_ensure_out_dir_names_the_folder(read_only_dir):
    from mmenv.atomic import ensure_out_dir

    with pytest.raises(WriteError, match="--out") as info:
        ensure_out_dir(read_only_dir / "x" / "y")
    assert "\n" not in str(info.value) and str(read_only_dir / "x" / "y") in str(info.value)


# ---------------------------------------------------------------- constructor edges
def test_huge_batch_budget_is_refused_and_the_bound_itself_runs():
    from mmenv.validation import MAX_BUDGET_PASSES

    with pytest.raises(InvalidArgumentError, match="batch_budget 1000000000 is more than"):
        DUSEnv(batch_budget=10 ** 9, dataset_kwargs=SMALL)
    bound = MAX_BUDGET_PASSES * 2 * SMALL["n_train"]
    with pytest.raises(InvalidArgumentError, match=f"<= {bound}"):
        DUSEnv(batch_budget=bound + 1, dataset_kwargs=SMALL)
    env = DUSEnv(batch_budget=bound, epochs=1, dataset_kwargs=SMALL)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(env.uniform_action())
    assert terminated and sum(info["batch_sizes"]) == bound


def test_empty_log_dir_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match="log_dir"):
        DUSEnv(log_dir="", dataset_kwargs=SMALL)
    assert not (tmp_path / "runs").exists()
