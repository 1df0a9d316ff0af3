import sys
from pathlib import Path

import pytest

from mmenv.learners import LearnerError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def custom_learner_module():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import custom_learner
    finally:
        sys.path.pop(0)
    return custom_learner


def test_custom_learner_example_runs_and_learns(custom_learner_module, capsys):
    test = custom_learner_module.main()
    assert set(test) == {"fused", "strong", "weak"}
    assert test["fused"]["accuracy"] > 0.5  # 4 classes: chance is 0.25
    assert "batch sizes [10, 22]" in capsys.readouterr().out  # 30 % / 70 % of N_B = 32


def test_custom_learner_refuses_a_wrong_modality_count(custom_learner_module):
    with pytest.raises(LearnerError, match="supports 2"):
        custom_learner_module.LateFusionLearner().check_modalities(["only"])
