import numpy as np
import pytest

from mmenv.sampling import ActionError, action_to_proportions, allocate


@pytest.mark.parametrize("budget", [6, 7, 64, 101])
@pytest.mark.parametrize("seed", range(20))
def test_sizes_sum_to_budget_and_follow_proportions(budget, seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 6))
    p = rng.dirichlet(np.ones(m))
    sizes = allocate(p, budget, min_size=0)
    assert sum(sizes) == budget
    assert np.all(np.abs(np.array(sizes) - budget * p) < 1.0)


def test_largest_remainder_by_hand():
    # 64 * (0.3, 0.3, 0.4) = 19.2, 19.2, 25.6 -> floors 19, 19, 25 (63); the one left goes to 25.6.
    assert allocate(np.array([0.3, 0.3, 0.4]), 64) == [19, 19, 26]
    # Equal remainders: ties go to the lower index.
    assert allocate(np.array([1 / 3, 1 / 3, 1 / 3]), 64) == [22, 21, 21]


def test_min_size_taken_from_largest():
    assert allocate(np.array([0.0, 1.0]), 64, min_size=1) == [1, 63]
    assert allocate(np.array([0.0, 0.0, 1.0]), 10, min_size=2) == [2, 2, 6]


def test_budget_too_small():
    with pytest.raises(ActionError, match="smaller than"):
        allocate(np.array([0.5, 0.5]), 1, min_size=1)


def test_normalisation_and_edges():
    np.testing.assert_allclose(action_to_proportions([0.2, 0.6], 2), [0.25, 0.75])
    np.testing.assert_allclose(action_to_proportions([0.0, 0.0], 2), [0.5, 0.5])  # all zeros -> uniform
    np.testing.assert_allclose(action_to_proportions([-1.0, 1.0], 2, symmetric=True), [0.0, 1.0])
    # float overshoot within tolerance is clipped
    np.testing.assert_allclose(action_to_proportions([1.0 + 1e-7, -1e-7], 2), [1.0, 0.0])


@pytest.mark.parametrize(
    "action, match",
    [
        ([0.5, np.nan], "NaN or inf"),
        ([np.inf, 0.5], "NaN or inf"),
        ([-0.1, 0.5], "outside the action space"),
        ([0.5, 1.5], "outside the action space"),
        ([0.5, 0.5, 0.5], "shape"),
        ([[0.5], [0.5]], "shape"),
        (["a", "b"], "real-valued"),
        ([1 + 1j, 0], "real-valued"),
    ],
)
def test_bad_actions_raise(action, match):
    with pytest.raises(ActionError, match=match):
        action_to_proportions(action, 2)
