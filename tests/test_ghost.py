"""`ShardBatchNorm`: one pass over a batch computes what BatchNorm computes shard by shard."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mnist_lib.speed.ghost import ShardBatchNorm, shard_batchnorms


def batchnorm() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.BatchNorm2d(6), nn.ReLU()).double()
    model[1].weight.data.uniform_(0.5, 1.5)
    model[1].bias.data.uniform_(-1, 1)
    return model


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_one_pass_is_batchnorm_shard_by_shard(layout):
    """In float64: outputs and gradients as BatchNorm2d's on each shard alone, running statistics
    those of the first shard (as the shard loop keeps them), the layout kept."""
    loop = batchnorm()
    one = shard_batchnorms(copy.deepcopy(loop), 3)
    assert isinstance(one[1], ShardBatchNorm)
    x = (torch.randn(12, 2, 7, 7, dtype=torch.double) * 3 + 1).to(memory_format=layout)
    out = one(x)
    first = copy.deepcopy(loop)
    first(x[:4])
    expected = torch.cat([loop(shard) for shard in x.tensor_split(3)])
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert out.is_contiguous(memory_format=layout)
    grad = torch.randn_like(out)
    (out * grad).sum().backward()
    (expected * grad).sum().backward()
    for a, b in zip(one.parameters(), loop.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)
    for a, b in zip(one.buffers(), first.buffers(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    one.eval()
    loop.eval()
    torch.testing.assert_close(one(x), first.eval()(x), rtol=1e-12, atol=1e-12)


def test_a_batch_that_does_not_split_evenly_is_refused():
    one = shard_batchnorms(batchnorm(), 2)
    with pytest.raises(ValueError, match="does not split into 2 equal shards"):
        one(torch.randn(5, 2, 7, 7, dtype=torch.double))


def test_bf16_input_is_normalised_in_fp32_and_stays_bf16():
    one = shard_batchnorms(batchnorm().float(), 2)[1]
    # A mean that statistics in bf16 would round by up to 8 (a shift of 0.16 standard deviations)
    x = (torch.randn(8, 6, 5, 5) * 50 + 4000).bfloat16()
    out = one(x)
    assert out.dtype == torch.bfloat16
    reference = torch.cat(
        [
            nn.functional.batch_norm(s, None, None, one.weight, one.bias, True)
            for s in x.float().split(4)
        ]
    )
    torch.testing.assert_close(out.float(), reference, rtol=0.01, atol=0.03)
