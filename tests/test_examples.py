import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_custom_learner_example_runs_and_learns():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "custom_learner.py")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    accuracies = ast.literal_eval(last)  # the example prints a dict of test accuracies
    assert set(accuracies) == {"fused", "strong", "weak"}
    assert accuracies["fused"] > 0.5  # 4 classes: chance is 0.25


def test_custom_learner_refuses_a_wrong_modality_count():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from custom_learner import LateFusionLearner
    finally:
        sys.path.pop(0)
    import pytest

    from mmenv.learners import LearnerError

    with pytest.raises(LearnerError, match="supports 2"):
        LateFusionLearner().check_modalities(["only"])
