import pytest
import torch

from mmenv.datasets import DatasetError, make_dataset, make_synthetic, tensor_dataset


def test_synthetic_shapes_and_balance():
    ds = make_synthetic(n_train=400, n_val=40, n_test=80, dims=[8, 12])
    assert ds.modality_names == ("strong", "weak")
    assert ds.train.inputs["strong"].shape == (400, 8) and ds.train.inputs["weak"].shape == (400, 12)
    assert torch.bincount(ds.train.labels).tolist() == [100] * 4
    assert len(ds.val) == 40 and len(ds.test) == 80


def test_synthetic_is_a_pure_function_of_its_arguments():
    a, b = make_synthetic(seed=3), make_synthetic(seed=3)
    assert torch.equal(a.train.inputs["weak"], b.train.inputs["weak"])
    assert not torch.equal(a.train.inputs["weak"], make_synthetic(seed=4).train.inputs["weak"])


def test_registry_and_errors():
    assert make_dataset("synthetic", n_train=10, n_val=0, n_test=10).val is None
    with pytest.raises(ValueError, match="valid names"):
        make_dataset("nope")
    x = {"a": torch.zeros(4, 2), "b": torch.zeros(3, 2)}
    with pytest.raises(DatasetError, match="'b' has 3 samples but there are 4 labels"):
        tensor_dataset("t", (x, torch.zeros(4)), (x, torch.zeros(4)))
    ok = {"a": torch.zeros(4, 2), "b": torch.zeros(4, 2)}
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 2\)"):
        tensor_dataset("t", (ok, torch.tensor([0, 1, 2, 1])), (ok, torch.tensor([0, 1, 0, 1])), num_classes=2)
    with pytest.raises(DatasetError, match="NaN"):
        tensor_dataset("t", ({"a": torch.full((4, 2), float("nan")), "b": torch.zeros(4, 2)}, torch.zeros(4)),
                       (ok, torch.zeros(4)))
    with pytest.raises(DatasetError, match="at least 2 modalities"):
        tensor_dataset("t", ({"a": torch.zeros(4, 2)}, torch.zeros(4)), ({"a": torch.zeros(4, 2)}, torch.zeros(4)))
