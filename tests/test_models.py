"""Models: shapes for every norm, the DLN is exactly its matrix product, Glorot init, layer numbering."""

import math

import pytest
import torch

from bnstudy.config import DLNConf, NormConf, SmallCNNConf, VGGConf
from bnstudy.models import Block, build_model
from bnstudy.norms import NORMS

CNN_NORMS = sorted(n for n, e in NORMS.items() if e.residual is None)  # the others: residual networks only
DLN_NORMS = sorted(set(CNN_NORMS) - {"instance"})


@pytest.mark.parametrize("norm", CNN_NORMS)
def test_small_cnn_shapes(norm):
    model = build_model(SmallCNNConf(), NormConf(name=norm), (1, 28, 28), 10)
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    assert len(model.blocks) == 2
    assert [b.layer.out_channels for b in model.blocks] == [8, 16]


@pytest.mark.parametrize("norm", ["none", "batch", "noisy_batch", "l1", "group"])
@pytest.mark.parametrize("depth,convs", [(11, 8), (16, 13)])
def test_vgg_shapes_and_depth(norm, depth, convs):
    model = build_model(VGGConf(depth=depth, width=0.125), NormConf(name=norm), (3, 32, 32), 10)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert len(model.blocks) == convs  # the paper's figures number VGG-16's 13 conv layers


def test_vgg_on_28x28_input_skips_pools_it_cannot_take():
    model = build_model(VGGConf(depth=11, width=0.125), NormConf(name="batch"), (1, 28, 28), 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("norm", DLN_NORMS)
def test_dln_shapes(norm):
    model = build_model(DLNConf(), NormConf(name=norm), (10,), None)
    assert model(torch.randn(8, 10)).shape == (8, 10)
    assert len(model.blocks) == 24  # 25 layers: 24 normalised hidden layers and the output layer


def test_dln_without_norm_is_its_matrix_product():
    model = build_model(DLNConf(bias=False), NormConf(name="none"), (10,), None)
    product = torch.eye(10)
    for block in model.blocks:
        product = block.layer.weight @ product
    product = model.head.weight @ product
    x = torch.randn(5, 10)
    torch.testing.assert_close(model(x), x @ product.T, rtol=1e-4, atol=1e-5)


def test_glorot_uniform_bounds_and_zero_bias():
    torch.manual_seed(0)
    model = build_model(VGGConf(depth=11, width=0.25), NormConf(name="none"), (3, 32, 32), 10)
    conv = model.blocks[3].layer
    fan_in = conv.in_channels * 9
    fan_out = conv.out_channels * 9
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound
    assert conv.weight.abs().max() > 0.9 * bound  # uniform fills its range
    assert torch.all(conv.bias == 0)


def test_norm_position_after_activation():
    before = build_model(SmallCNNConf(), NormConf(name="batch", position="before"), (1, 28, 28), 10)
    after = build_model(SmallCNNConf(), NormConf(name="batch", position="after"), (1, 28, 28), 10)
    x = torch.randn(16, 1, 12, 12)
    b0, b1 = before.blocks[0], after.blocks[0]
    b1.load_state_dict(b0.state_dict())
    assert torch.equal(b0(x), torch.relu(b0.norm(b0.layer(x))))
    assert torch.equal(b1(x), b1.norm(torch.relu(b1.layer(x))))


def test_layer_index_out_of_range_names_the_range():
    model = build_model(SmallCNNConf(), NormConf(), (1, 28, 28), 10)
    assert isinstance(model.block(2), Block)
    with pytest.raises(ValueError, match=r"layers 1\.\.2"):
        model.block(3)


def test_unknown_model_lists_valid():
    cfg = SmallCNNConf()
    cfg.name = "densenet"
    with pytest.raises(ValueError, match="dln.*resnet.*small_cnn.*vgg.*vit"):
        build_model(cfg, NormConf(), (1, 28, 28), 10)
