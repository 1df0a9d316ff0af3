import math

import pytest
import torch

from mmenv.discrepancy import DiscrepancyTracker, batch_discrepancy, true_class_probability


def test_true_class_probability_by_hand():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    labels = torch.tensor([1, 0])
    torch.testing.assert_close(true_class_probability(logits, labels), torch.tensor([0.5, 0.75]))


def test_batch_discrepancy_sum_and_mean():
    logits = {"a": torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]), "b": torch.tensor([[0.0, math.log(4.0)]])}
    labels = {"a": torch.tensor([1, 0]), "b": torch.tensor([1])}
    torch.testing.assert_close(batch_discrepancy(logits, labels, ("a", "b"), "sum"), torch.tensor([1.25, 0.8]))
    torch.testing.assert_close(batch_discrepancy(logits, labels, ("a", "b"), "mean"), torch.tensor([0.625, 0.8]))


def test_cumulative_is_eq3_running_mean():
    tr = DiscrepancyTracker(("a", "b"), "sum", batch_budget=10)
    seq = [torch.tensor([4.0, 2.0]), torch.tensor([6.0, 1.0]), torch.tensor([2.0, 3.0])]
    expected = None
    for t, s in enumerate(seq, start=1):
        tr.update(s)
        expected = s.clone() if t == 1 else expected * (t - 1) / t + s / t
        torch.testing.assert_close(tr.value, expected)
    torch.testing.assert_close(tr.value, torch.tensor([4.0, 2.0]))  # the plain mean of the three
    torch.testing.assert_close(tr.observation, torch.tensor([0.4, 0.2]))  # divided by N_B


def test_mean_mode_is_not_rescaled_and_bad_mode():
    tr = DiscrepancyTracker(("a", "b"), "mean", batch_budget=10)
    tr.update(torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(tr.observation, torch.tensor([0.5, 0.25]))
    with pytest.raises(ValueError, match="valid"):
        DiscrepancyTracker(("a", "b"), "median")


def test_mean_mode_empty_batch_keeps_running_value():
    tr = DiscrepancyTracker(("a", "b"), "mean", batch_budget=10)
    tr.update(torch.tensor([0.5, 0.25]))
    tr.update(torch.tensor([0.7, float("nan")]))
    torch.testing.assert_close(tr.value, torch.tensor([0.6, 0.25]))
