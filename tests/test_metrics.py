import pytest
import torch

from mmenv.metrics import accuracy, classification_metrics, macro_f1, mean_average_precision


def test_accuracy_and_f1_by_hand():
    scores = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 0, 1])
    assert accuracy(scores, labels) == pytest.approx(0.75)
    # class 0: tp 2, pred 2, true 3 -> F1 = 4/5; class 1: tp 1, pred 2, true 1 -> 2/3
    assert macro_f1(scores, labels) == pytest.approx((0.8 + 2 / 3) / 2)


def test_map_by_hand():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 1, 0])
    # class 0 ranking: s0(+), s1(-), s3(+), s2(-) -> AP = (1/1 + 2/3)/2
    # class 1 ranking: s2(+), s3(-), s1(+), s0(-) -> AP = (1 + 2/3)/2
    assert mean_average_precision(scores, labels) == pytest.approx((5 / 6 + 5 / 6) / 2)


def test_perfect_scores():
    labels = torch.arange(5).repeat(4)
    scores = torch.nn.functional.one_hot(labels, 5).float()
    assert classification_metrics(scores, labels) == {"accuracy": 1.0, "map": 1.0, "macro_f1": 1.0}
