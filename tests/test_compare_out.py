"""``mmenv compare`` without ``--out`` never mixes two sweeps in one folder."""

from __future__ import annotations

import yaml
from mmenv.experiments.compare import default_out_dir
from mmenv.experiments.config import load_config


def _write(cfg) -> None:
    out = cfg.out if isinstance(cfg.out, str) else str(cfg.out)
    from pathlib import Path

    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def test_default_out_is_kept_for_a_new_folder_or_the_same_sweep(tmp_path):
    cfg = load_config("tiny", overrides={"out": str(tmp_path / "c")})
    assert default_out_dir(cfg) == cfg.out                     # nothing there yet
    _write(cfg)
    same = load_config("tiny", overrides={"out": str(tmp_path / "c"), "workers": 2, "plots": False})
    assert default_out_dir(same) == cfg.out                    # same runs: resume there


def test_other_settings_go_to_a_fresh_time_stamped_folder(tmp_path, capsys):
    cfg = load_config("tiny", overrides={"out": str(tmp_path / "c")})
    _write(cfg)
    other = load_config("tiny", overrides={"out": str(tmp_path / "c"), "seeds": [0, 1, 2]})
    fresh = default_out_dir(other, now=0.0)
    assert fresh != cfg.out and fresh.startswith(cfg.out + "-") and len(fresh) == len(cfg.out) + 16
    assert "holds a comparison with other settings" in capsys.readouterr().out
    (tmp_path / fresh).mkdir(parents=True)
    again = default_out_dir(other, now=0.0)                    # the same second: still a new folder
    assert again not in (fresh, cfg.out)
