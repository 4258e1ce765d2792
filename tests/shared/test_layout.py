"""shared.layout.linear: few-row products (per-thread panels, oneDNN) give F.linear's values, in either layout."""

import pytest
import torch
from torch.nn import functional as F

from shared import layout


@pytest.fixture
def onednn_calls(monkeypatch):
    calls = []
    onednn = layout._ONEDNN_LINEAR
    assert onednn is not None  # the pinned torch has it

    def counted(x, *args):
        calls.append(tuple(x.shape))
        return onednn(x, *args)

    monkeypatch.setattr(layout, "_ONEDNN_LINEAR", counted)
    return calls


@pytest.fixture
def bmm_calls(monkeypatch):
    calls = []
    bmm = torch.bmm

    def counted(*args):
        calls.append(args[1].shape)
        return bmm(*args)

    monkeypatch.setattr(torch, "bmm", counted)
    return calls


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("rows", [1, 5, layout.FEW_ROWS])
@pytest.mark.parametrize("column_major", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_few_rows_equal_f_linear(monkeypatch, bmm_calls, onednn_calls, parts, rows, column_major, bias):
    """One row: a panel per thread; a few rows: oneDNN."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: parts)
    torch.manual_seed(0)
    out_features = 3 * layout.MIN_PANEL + 2  # 194: a remainder for both thread counts
    weight = torch.randn(out_features, 48)
    if column_major:
        weight = weight.t().contiguous().t()
    b = torch.randn(out_features) if bias else None
    x = torch.randn(rows, 1, 48)  # (B, T, in)
    out = layout.linear(x, weight, b)
    if rows == 1:
        assert bmm_calls == [(parts, 48, out_features // parts)] and onednn_calls == []
    else:
        assert onednn_calls == [(rows, 48)] and bmm_calls == []
    assert out.shape == (rows, 1, out_features)
    torch.testing.assert_close(out, F.linear(x, weight, b), rtol=1e-5, atol=1e-5)


def test_gradients_through_the_panels(monkeypatch, bmm_calls, onednn_calls):
    """With gradients, a few rows take the panels too (oneDNN's linear has no backward)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    layer, reference = layout.Linear(32, 256), torch.nn.Linear(32, 256)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(3, 32, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    layer(x).square().sum().backward()
    reference(x_ref).square().sum().backward()
    assert bmm_calls and not onednn_calls
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad)
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad)


@pytest.mark.parametrize("rows, parts, out_features", [
    (layout.FEW_ROWS + 1, 2, 256),  # many rows: a matrix-matrix product, already parallel
    (1, 1, 256),  # one thread
    (1, 2, 2 * layout.MIN_PANEL - 1),  # panels too narrow to pay
])
def test_other_products_are_f_linear(monkeypatch, bmm_calls, onednn_calls, rows, parts, out_features):
    monkeypatch.setattr(torch, "get_num_threads", lambda: parts)
    weight, x = torch.randn(out_features, 16), torch.randn(rows, 16)
    assert torch.equal(layout.linear(x, weight), F.linear(x, weight))
    assert bmm_calls == [] and onednn_calls == []


def test_linear_is_an_nn_linear():
    layer = layout.Linear(8, 4)
    assert isinstance(layer, torch.nn.Linear)
    assert list(layer.state_dict()) == list(torch.nn.Linear(8, 4).state_dict())
