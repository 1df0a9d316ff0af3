"""Bad input at the package's edge, property-based: every hostile constructor argument, data
file and config either works as documented or raises an :class:`mmenv.MMEnvError` subclass
naming the argument / file / key, before anything trains; never another exception type,
never silence. Plus the edges that are not inputs: checkpoints on other data, two sweeps on
one folder, a killed sweep's workers, exploding losses, vector-env actions, failed writes,
and SB3 zips that would run code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmenv  # noqa: F401  (registers the ids)
from mmenv import DUSEnv
from mmenv.datasets import DatasetError, make_features, make_synthetic
from mmenv.errors import InvalidArgumentError, LockError, MMEnvError, WriteError
from mmenv.learners import LearnerError
from mmenv.rewards import RewardError
from mmenv.sampling import ActionError

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])
SMALL = dict(n_train=32, n_val=8, n_test=16)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(**SMALL, seed=0)


# ---------------------------------------------------------------- constructor arguments
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=3), st.sampled_from([np.int64(3), np.int32(2), np.float32(0.5), np.bool_(True),
                                                       "3", "fast", [], {}, 2.5, 0, -1, 1e9]))
ARGS = ["epochs", "batch_budget", "iters_per_epoch", "eval_batch_size", "min_batch", "action_tol", "softmax_scale",
        "step_every", "action_space", "discrepancy", "autocast_dtype", "render_mode", "log_dir", "device", "reward"]


@FAST
@given(arg=st.sampled_from(ARGS), value=junk)
def test_hostile_constructor_argument_works_or_names_itself(data, tmp_path_factory, arg, value):
    # A generated text may be accepted as a relative log_dir: work in a scratch folder.
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        try:
            env = DUSEnv(dataset=data, **{"epochs": 1, "batch_budget": 8, arg: value})
        except MMEnvError as exc:
            assert arg in str(exc), (arg, value, str(exc))
            return
        # accepted: it must be a documented value, and the run must work
        env.reset(seed=0)
        _, reward, *_ = env.step(env.uniform_action())
        assert np.isfinite(reward)
        env.close()
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("arg, value", [
    ("iters_per_epoch", -1), ("iters_per_epoch", 2.5), ("iters_per_epoch", "3"), ("iters_per_epoch", 0),
    ("eval_batch_size", 0), ("eval_batch_size", -1), ("action_tol", float("nan")), ("action_tol", float("inf")),
    ("autocast_dtype", torch.int8), ("autocast_dtype", "int8"), ("epochs", True), ("batch_budget", 16.0),
])
def test_issue_cases_are_refused_at_construction(data, arg, value):
    with pytest.raises(InvalidArgumentError, match=arg):
        DUSEnv(dataset=data, **{"epochs": 1, "batch_budget": 8, arg: value})


def test_numpy_ints_are_ints_and_learner_kwargs_are_typed(data):
    env = DUSEnv(dataset=data, epochs=np.int64(1), batch_budget=np.int64(8), iters_per_epoch=np.int32(2))
    assert type(env.epochs) is int and env.batch_budget == 8 and env.total_iters == 2
    with pytest.raises(InvalidArgumentError, match="lr"):
        DUSEnv(dataset=data, learner_kwargs={"lr": "fast"})
    with pytest.raises(InvalidArgumentError, match="lr"):
        DUSEnv(dataset=data, learner_kwargs={"lr": -1.0})
    with pytest.raises(MMEnvError, match="dims"):
        DUSEnv(dataset_kwargs=dict(SMALL, dims=0))


def test_encoder_settings_for_a_modality_the_data_lacks_are_refused(data):
    """A misspelt modality in encoders / encoder_kwargs is refused before training, naming the
    data set's modalities (it used to leave that modality's encoder at its default)."""
    for key in ("encoder_kwargs", "encoders"):
        value = {"nosuch": {"out_dim": 8}} if key == "encoder_kwargs" else {"nosuch": "mlp"}
        env = DUSEnv(dataset=data, learner_kwargs={key: value})
        with pytest.raises(LearnerError, match=r"nosuch.*modalities are \['strong', 'weak'\]"):
            env.reset(seed=0)


def test_reward_returning_a_string_names_the_reward(data):
    def chatty(ctx):
        return "good"

    env = DUSEnv(dataset=data, epochs=1, batch_budget=8, reward=chatty)
    env.reset(seed=0)
    with pytest.raises(RewardError, match="chatty"):
        env.step(env.uniform_action())


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_, np.int8])
def test_int_uint8_bool_features_are_cast_to_float(dtype):
    from mmenv.datasets import tensor_dataset

    rng = np.random.default_rng(0)
    x = {"a": (rng.integers(0, 2, (16, 3))).astype(dtype), "b": rng.integers(0, 5, 16).astype(dtype)}  # b is 1-D
    y = np.arange(16) % 2
    ds = tensor_dataset("ints", (x, y), (x, y))
    assert ds.train.inputs["a"].dtype == torch.float32 and ds.modalities[1].shape == (1,)
    env = DUSEnv(dataset=ds, epochs=1, batch_budget=8)
    env.reset(seed=0)
    assert np.isfinite(env.step(env.uniform_action())[1])


# ---------------------------------------------------------------- data files
@st.composite
def feature_files(draw):
    """A train file with hostile contents: dtype, shape, values, length and label range."""
    n = draw(st.integers(0, 6))
    arrays = {}
    for name in ("a", "b"):
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, "U2", np.complex64]))
        rows = draw(st.sampled_from([n, n, n + 1, max(n - 1, 0)]))
        shape = draw(st.sampled_from([(rows, 3), (rows,), (rows, 2, 2), ()]))
        a = np.zeros(shape, dtype=dtype) if dtype != "U2" else np.full(shape, "x")
        if a.dtype.kind == "f" and a.size and draw(st.booleans()):
            a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf]))
        arrays[name] = a
    labels = np.array(draw(st.lists(st.integers(-2, 4), min_size=n, max_size=n)), dtype=np.int64)
    if draw(st.booleans()):
        arrays["extra"] = np.zeros(n, np.float32)   # an extra 1-D array: a third modality of width 1
    return arrays, labels, draw(st.sampled_from([".npz", ".h5"]))


def _write(path: Path, arrays, labels) -> None:
    if path.suffix == ".npz":
        np.savez(path, labels=labels, **arrays)
    else:
        import h5py

        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v if v.dtype.kind != "U" else v.astype("S"))
            f.create_dataset("labels", data=labels)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=feature_files())
def test_hostile_feature_file_loads_or_names_the_file(tmp_path_factory, spec):
    arrays, labels, suffix = spec
    root = tmp_path_factory.mktemp("feat")
    good = {"a": np.zeros((4, 3), np.float32), "b": np.ones((4, 3), np.float32)}
    _write(root / f"train{suffix}", arrays, labels)
    np.savez(root / "test.npz", labels=np.array([0, 1, 0, 1]), **good, **({"extra": np.zeros(4, np.float32)}
                                                                            if "extra" in arrays else {}))
    try:
        ds = make_features(root, val_fraction=0.0, num_classes=2)
    except DatasetError as exc:
        assert "train" in str(exc) or "test" in str(exc), str(exc)
        return
    env = DUSEnv(dataset=ds, epochs=1, batch_budget=4)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(env.uniform_action())
    assert np.isfinite(reward) and not info["diverged"]


def test_issue_file_cases_name_the_file(tmp_path):
    import h5py

    good = {"a": np.zeros((4, 3), np.float32), "b": np.ones((4, 3), np.float32)}
    y = np.array([0, 1, 0, 1])
    np.savez(tmp_path / "test.npz", labels=y, **good)
    np.save(tmp_path / "x.npy", np.zeros(4))
    os.replace(tmp_path / "x.npy", tmp_path / "train.npz")          # a .npy saved as train.npz
    with pytest.raises(DatasetError, match=r"train\.npz.*single array"):
        make_features(tmp_path)
    np.savez(tmp_path / "train.npz", labels=np.zeros(0, np.int64), a=np.zeros((0, 3)), b=np.zeros((0, 3)))
    with pytest.raises(DatasetError, match=r"train\.npz.*empty"):
        make_features(tmp_path)
    os.unlink(tmp_path / "train.npz")
    with h5py.File(tmp_path / "train.h5", "w") as f:                 # an HDF5 group instead of a dataset
        f.create_group("a")
        f.create_dataset("b", data=np.zeros((4, 3)))
        f.create_dataset("labels", data=y)
    with pytest.raises(DatasetError, match=r"train\.h5.*'a' is an HDF5 group"):
        make_features(tmp_path)
    bad = np.zeros((600, 3), np.float32)
    bad[517, 1] = np.nan                                              # NaN in a lazily read file
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f.create_dataset("a", data=bad)
        f.create_dataset("b", data=np.zeros((600, 3)))
        f.create_dataset("labels", data=np.arange(600) % 2)
    with pytest.raises(DatasetError, match=r"train\.h5.*'a'.*row 517"):
        make_features(tmp_path)


def test_media_files_fail_at_build_time_naming_the_file(tmp_path):
    from PIL import Image

    from mmenv.datasets.clip_lists import read_label_list
    from mmenv.datasets.frames import check_image_header
    from mmenv.datasets.wav import check_wav_header, read_wav

    wav = tmp_path / "one_byte.wav"
    fmt = (16).to_bytes(4, "little") + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + \
        (16000).to_bytes(4, "little") + (32000).to_bytes(4, "little") + (2).to_bytes(2, "little") + \
        (16).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + fmt + b"data" + (1).to_bytes(4, "little") + b"\x00\x00"
    wav.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    for check in (check_wav_header, read_wav):
        with pytest.raises(DatasetError, match="one_byte.wav.*less than one audio frame"):
            check(wav)
    png = tmp_path / "huge.png"
    Image.new("L", (1, 1)).save(png)
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 0.1   # any image is now a "decompression bomb" (> 2x the limit)
    try:
        with pytest.raises(DatasetError, match="huge.png.*too large"):
            check_image_header(png)
    finally:
        Image.MAX_IMAGE_PIXELS = old
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(DatasetError, match="labels.csv.*not UTF-8"):
        read_label_list(csv_path, None)


def test_a_corrupt_test_clip_fails_when_the_data_set_is_built(tmp_path):
    from mmenv.datasets.clip_lists import build_clips

    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "c1.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(DatasetError, match=r"test\.csv, row 1: clip 'c1'.*c1\.wav"):
        build_clips([("c1", "x", 1)], tmp_path / "test.csv", {"x": 0}, tmp_path / "audio", None)


# ---------------------------------------------------------------- compare configs
BASE = {"policies": ["uniform"], "learners": ["baseline"], "datasets": ["synthetic"], "seeds": 1,
        "env": {"epochs": 1, "batch_budget": 16}}
SECTIONS = ["dataset_kwargs", "learner_kwargs", "policy_kwargs", "sample_order_kwargs"]
NAMES = {"dataset_kwargs": ["synthetic", "synthtic", "uci-mfeat", "nope"], "learner_kwargs": ["baseline", "mla", "basline"],
         "policy_kwargs": ["uniform", "dus-h", "unform"], "sample_order_kwargs": ["remix", "bss-curriculum", "remx"]}
KEYS = ["n_train", "lr", "seed", "beta", "dims", "momentum", "typo_key", "t_grow", "noise"]


@settings(max_examples=60, deadline=None)
@given(section=st.sampled_from(SECTIONS), data=st.data())
def test_hostile_kwargs_section_is_valid_or_names_the_key(section, data):
    from mmenv.experiments.config import ConfigError, config_from_dict

    name = data.draw(st.sampled_from(NAMES[section]))
    key = data.draw(st.sampled_from(KEYS))
    value = data.draw(junk)
    raw = json.loads(json.dumps(BASE)) | {section: {name: {key: value}}}
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        assert f"{section}.{name}" in str(exc), str(exc)
        return
    assert getattr(cfg, section)[name][key] == value or (value != value)  # kept as given (NaN != NaN)


@settings(max_examples=60, deadline=None)
@given(key=st.sampled_from(sorted(__import__("mmenv.experiments.config", fromlist=["x"]).ENV_SCHEMA) + ["epoch"]),
       value=junk)
def test_hostile_env_section_is_valid_or_names_the_key(key, value):
    from mmenv.experiments.config import ConfigError, config_from_dict

    raw = json.loads(json.dumps(BASE))
    raw["env"][key] = value
    try:
        cfg = config_from_dict(raw)
    except ConfigError as exc:
        assert f"env.{key}" in str(exc), str(exc)
        return
    # accepted: DUSEnv takes it too (same rules, checked before any run)
    DUSEnv(dataset=make_synthetic(**SMALL), **{"epochs": 1, "batch_budget": 16, **cfg.env})


def test_misspelled_names_yaml_floats_and_schema_coverage(tmp_path):
    from mmenv.experiments.config import ENV_SCHEMA, ConfigError, _env_arguments, config_from_dict, load_config

    assert set(ENV_SCHEMA) == set(_env_arguments())     # every DUSEnv argument has a rule
    with pytest.raises(ConfigError, match=r"dataset_kwargs.synthtic.*did you mean 'synthetic'"):
        config_from_dict(BASE | {"dataset_kwargs": {"synthtic": {"n_train": 64}}})
    with pytest.raises(ConfigError, match=r"learner_kwargs.baseline.*'lrr'.*did you mean 'lr'"):
        config_from_dict(BASE | {"learner_kwargs": {"baseline": {"lrr": 0.1}}})
    path = tmp_path / "c.yaml"
    path.write_text("policies: [uniform]\nlearners: [baseline]\ndatasets: [synthetic]\n"
                    "learner_kwargs: {baseline: {lr: 1e-3}}\nenv: {action_tol: 1e-6}\n")
    cfg = load_config(str(path))
    assert cfg.learner_kwargs["baseline"]["lr"] == 1e-3 and cfg.env["action_tol"] == 1e-6


# ---------------------------------------------------------------- checkpoints, divergence, vector env
def test_checkpoint_refuses_other_data(tmp_path):
    from mmenv.checkpoint import DataMismatchError

    env = DUSEnv(epochs=2, batch_budget=16, dataset_kwargs=dict(SMALL, seed=0))
    env.reset(seed=0)
    env.step(env.uniform_action())
    env.save_checkpoint(str(tmp_path / "run.ckpt"))
    other = DUSEnv(epochs=2, batch_budget=16, dataset_kwargs=dict(SMALL, seed=7))
    with pytest.raises(DataMismatchError, match="other data"):
        other.load_checkpoint(str(tmp_path / "run.ckpt"))
    DUSEnv(epochs=2, batch_budget=16, dataset_kwargs=dict(SMALL, seed=0)).load_checkpoint(str(tmp_path / "run.ckpt"))


def test_finite_losses_past_the_bound_are_divergence(data):
    from mmenv.env import LOSS_DIVERGENCE_BOUND

    env = DUSEnv(dataset=data, epochs=2, batch_budget=8)
    env.reset(seed=0)
    proportions, sizes = env.batch_sizes_for(env.uniform_action())
    packed = np.array([0.1, 0.2, 0.5, 0.5, 1.0, LOSS_DIVERGENCE_BOUND * 10], dtype=np.float64)
    *_, truncated, info = env.finish_step(packed, ["total", "fused"], proportions, sizes, None)
    assert truncated and info["diverged"] and np.isfinite(info["train_loss"]["fused"])


@pytest.mark.parametrize("learner", ["baseline", "pmr"])
def test_lr_1_ends_diverged(learner):
    env = DUSEnv(learner=learner, epochs=5, batch_budget=32, learner_kwargs={"lr": 1.0},
                 dataset_kwargs=dict(n_train=256, n_val=64, n_test=128))
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.uniform_action())
        done = terminated or truncated
    assert info["diverged"] is True


@pytest.mark.parametrize("action", [np.float32(0.5), None, 3, "ab", np.array(0.5)])
def test_vector_env_bad_actions_raise_action_error(action):
    from mmenv.vector_env import DUSVectorEnv

    vec = DUSVectorEnv(2, epochs=1, batch_budget=8, dataset_kwargs=SMALL)
    vec.reset(seed=0)
    with pytest.raises(ActionError):
        vec.step(action)
    with pytest.raises(ActionError, match="sub-environment 1"):
        vec.step(np.array([[0.5, 0.5], [np.nan, 0.5]]))


# ---------------------------------------------------------------- writes, locks, workers
def test_failed_writes_are_one_line_naming_the_path_and_leave_no_temp(tmp_path, monkeypatch):
    from mmenv import atomic
    from mmenv.checkpoint import atomic_save

    target = tmp_path / "agent.pt"
    atomic_save({"a": 1}, target)

    def full_disk(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(WriteError, match=f"cannot write {target}") as info:
        atomic_save({"a": 2}, target)
    assert "\n" not in str(info.value) and not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    stale = tmp_path / ".agent.pt.abc.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 2 * atomic.STALE_TMP_SECONDS,) * 2)
    atomic_save({"a": 3}, target)
    assert not stale.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_folder_is_one_write_error(tmp_path):
    from mmenv.atomic import atomic_write_text

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(WriteError, match=f"cannot write {ro / 'results.csv'}"):
            atomic_write_text(ro / "results.csv", "x")
    finally:
        ro.chmod(0o700)


def test_tensorboard_failure_warns_and_training_goes_on(data, monkeypatch):
    from mmenv import tb

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tb, "log_step", broken)
    env = DUSEnv(dataset=data, epochs=2, batch_budget=8, log_dir=str(Path(os.environ.get("TMPDIR", "/tmp"))
                                                                      / f"tb-{os.getpid()}"))
    env.reset(seed=0)
    with pytest.warns(RuntimeWarning, match="TensorBoard logging .* stopped, training goes on"):
        env.step(env.uniform_action())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(env.uniform_action())   # no second warning, still training
    env.close()


_HOLD = """
import sys, time
from mmenv.locks import FolderLock
lock = FolderLock(sys.argv[1], "mmenv compare").acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.subprocess
def test_second_sweep_on_one_folder_gets_a_lock_error_and_a_killed_lock_is_taken_over(tmp_path):
    from mmenv.locks import FolderLock

    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=rf"\.mmenv\.lock.*pid {proc.pid}"):
            FolderLock(tmp_path, "mmenv compare").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lock = FolderLock(tmp_path, "mmenv compare").acquire()   # stale: the holder was killed
    lock.release()


_SWEEP = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp, os
from mmenv.experiments.backends import init_worker

def sleeper(_):
    time.sleep(120)

if __name__ == "__main__":
    pool = ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"), initializer=init_worker,
                               initargs=(os.getpid(),))
    futures = [pool.submit(sleeper, i) for i in range(2)]
    time.sleep(0.5)
    print(" ".join(str(p) for p in pool._processes), flush=True)
    time.sleep(120)
"""


@pytest.mark.subprocess
def test_workers_die_with_a_killed_sweep(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(_SWEEP)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2
    time.sleep(3)   # the workers are up (spawned, imported, initialised)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    alive = pids
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if _alive(p)]
    assert not alive, f"workers {alive} outlived the killed sweep"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) is dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- SB3 zips
_MARKER_PAYLOAD = """
import os
class Boom:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
"""


def test_sb3_zip_with_a_code_payload_never_runs_it(tmp_path):
    import base64
    import pickle

    import gymnasium as gym
    from mmenv.agents.sb3 import load_sb3_model, save_sb3_model
    from stable_baselines3 import PPO

    env = gym.make("mmenv/DUS-v0", epochs=1, batch_budget=8, dataset_kwargs=SMALL)
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0, policy_kwargs={"net_arch": [8]})
    good = tmp_path / "good.zip"
    save_sb3_model(model, good)
    obs = np.array([0.3, 0.6], dtype=np.float32)
    assert np.allclose(load_sb3_model(good).predict(obs, deterministic=True)[0],
                       model.predict(obs, deterministic=True)[0])

    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = base64.b64encode(pickle.dumps(Boom())).decode()
    for key, kind in (("lr_schedule", "<class 'stable_baselines3.common.utils.FloatSchedule'>"),
                      ("clip_range", "<class 'stable_baselines3.common.utils.FloatSchedule'>"),
                      ("evil", "<class 'os.system'>")):
        crafted = tmp_path / f"crafted_{key}.zip"
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(crafted, "w") as zout:
            for item in zin.infolist():
                blob = zin.read(item.filename)
                if item.filename == "data":
                    d = json.loads(blob)
                    d[key] = {":type:": kind, ":serialized:": payload, "value_schedule": "ConstantSchedule(val=0.1)"}
                    blob = json.dumps(d).encode()
                zout.writestr(item, blob)
        try:
            load_sb3_model(crafted)
        except MMEnvError:
            pass
        assert not marker.exists(), f"the pickled payload under {key!r} ran"
    # the control: SB3's own loader does run it
    from stable_baselines3.common.save_util import json_to_data

    json_to_data(json.dumps({"x": {":type:": "t", ":serialized:": payload}}))
    assert marker.exists()


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_across_run_agent_file_is_read_with_the_safe_loader(tmp_path):
    from mmenv.agents.across_runs import TrainedAgent

    from mmenv.checkpoint import UnsafeCheckpointError

    marker = tmp_path / "pwned"
    path = tmp_path / "agent.pt"
    torch.save({"across_runs": {"algo": "reinforce"}, "payload": _Boom(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError):
        TrainedAgent.load(path)
    assert not marker.exists()


SYNTHETIC_KEYS = ["num_classes", "num_modalities", "n_train", "n_val", "n_test", "dims", "shortcut_fraction",
                  "strong_snr", "clusters_per_class", "latent_dim", "latent_noise", "noise", "names", "seed"]


@FAST
@given(key=st.sampled_from(SYNTHETIC_KEYS), value=junk)
def test_hostile_dataset_kwargs_build_or_name_the_key(key, value):
    kwargs = dict(n_train=16, n_val=4, n_test=8, dims=4) | {key: value}
    try:
        env = DUSEnv(dataset_kwargs=kwargs, epochs=1, batch_budget=8)
    except MMEnvError as exc:
        assert key in str(exc), (key, value, str(exc))
        return
    env.reset(seed=0)
    assert np.isfinite(env.step(env.uniform_action())[1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.one_of(st.binary(max_size=64),
                      st.builds(lambda tail: b"RIFF\x24\x00\x00\x00WAVEfmt " + tail, st.binary(max_size=48)),
                      st.builds(lambda tail: b"\x89PNG\r\n\x1a\n" + tail, st.binary(max_size=48))),
       kind=st.sampled_from(["wav", "png", "csv"]))
def test_random_bytes_as_media_or_label_files_name_the_file(tmp_path_factory, blob, kind):
    from mmenv.datasets.clip_lists import read_label_list
    from mmenv.datasets.frames import check_image_header, load_rgb
    from mmenv.datasets.wav import check_wav_header, read_wav

    path = tmp_path_factory.mktemp("bytes") / f"clip.{kind}"
    path.write_bytes(blob)
    checks = {"wav": (check_wav_header, read_wav), "png": (check_image_header, load_rgb),
              "csv": (lambda p: read_label_list(p, None),)}[kind]
    for check in checks:
        try:
            check(path)
        except DatasetError as exc:
            assert str(path) in str(exc), str(exc)
