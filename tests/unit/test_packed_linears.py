"""Packed oneDNN linear layers (sftops/modeling/packed.py): same products as ``F.linear`` inside
the block, the plain layer everywhere else, never a stale packed weight."""

from __future__ import annotations

import pytest
import torch

from sftops.modeling import packed

pytestmark = pytest.mark.skipif(not packed.available(), reason="this torch has no oneDNN")


def small_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.SiLU(), torch.nn.Linear(32, 8))


def test_inside_the_block_products_match_f_linear_and_use_the_packed_weight() -> None:
    model, x = small_model(), torch.randn(5, 3, 16)
    with torch.inference_mode():
        expected = model(x)
        with packed.packed_linears(model) as active:
            got = model(x)
    assert active
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert all(layer.forward.packed is not None for layer in (model[0], model[2]))


def test_outside_the_block_the_layer_is_exactly_f_linear() -> None:
    model, x = small_model(), torch.randn(4, 16)
    with torch.inference_mode():
        with packed.packed_linears(model):
            model(x)
        after = model(x)
    first, last = model[0], model[2]
    hidden = torch.nn.functional.silu(torch.nn.functional.linear(x, first.weight, first.bias))
    assert torch.equal(after, torch.nn.functional.linear(hidden, last.weight, last.bias))


def test_a_weight_changed_after_packing_is_packed_again() -> None:
    model, x = small_model(), torch.randn(4, 16)
    with torch.inference_mode(), packed.packed_linears(model):
        model(x)
    with torch.no_grad():  # an optimizer step: in place
        model[0].weight.mul_(-2.0)
    with torch.inference_mode(), packed.packed_linears(model):
        got = model(x)
    with torch.inference_mode():
        expected = model[2](
            torch.nn.functional.silu(torch.nn.functional.linear(x, model[0].weight, model[0].bias))
        )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_training_inside_the_block_keeps_gradients() -> None:
    model, x = small_model(), torch.randn(4, 16)
    with packed.packed_linears(model):  # grad mode: the plain path, autograd intact
        model(x).sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0


def test_installing_twice_keeps_one_wrapper() -> None:
    model = small_model()
    assert packed.install(model) == 2
    first = model[0].forward
    assert packed.install(model) == 2
    assert model[0].forward is first
