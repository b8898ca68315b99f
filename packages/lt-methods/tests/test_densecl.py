"""DenseCL: the InfoNCE values, the location matching, the queues, the automatic options,
the 1x1-map error and the dense warm-up."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, from_dict
from lt_methods import DenseCL, DenseCLArgs, DenseCLTransformArgs
from lt_methods._densecl import info_nce

SMALL = {"hidden_dim": 32, "output_dim": 16, "memory_bank_size": 64}


class PooledPixels(nn.Module):
    """A 1x1 convolution on the image average-pooled to a 4x4 grid (8x8 pixel cells of a
    32x32 view): flipping the view flips the map exactly. ``detach_pool`` makes the pooled
    branch carry no gradient, so only the unpooled map can train the wrapper."""

    def __init__(self, detach_pool: bool = False, grid: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.detach_pool = detach_pool
        self.grid = grid

    def get_model(self) -> nn.Module:
        return self.conv

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": self.conv(F.adaptive_avg_pool2d(x, self.grid))}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        features = x["features"].detach() if self.detach_pool else x["features"]
        return {"pooled_features": features.mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return 8


def densecl(wrapper: nn.Module | None = None, **args: object) -> DenseCL:
    model = EmbeddingModel(wrapper if wrapper is not None else PooledPixels())
    transform_args = {"image_size": [32, 32]}
    return DenseCL(model, {**SMALL, "dense_warmup_steps": 0, **args}, transform_args)


def views(batch: int = 4) -> list[Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 3, 32, 32, generator=gen) for _ in range(2)]


def test_info_nce_known_values() -> None:
    q = torch.eye(4)[:2]  # rows e0, e1
    negatives = torch.eye(4)[2:]  # e2, e3: orthogonal to every query
    t = 0.2
    # Positive equal to the query, negatives orthogonal: -log(e^(1/t) / (e^(1/t) + 2)).
    expected = math.log(1 + 2 * math.exp(-1 / t))
    assert info_nce(q, q, negatives, t).item() == pytest.approx(expected, rel=1e-6)
    # Positive orthogonal too: every logit is 0, the loss is log(3).
    assert info_nce(q, q.flip(0), negatives, t).item() == pytest.approx(math.log(3), rel=1e-6)
    # Negatives equal to the query: log(1 + K) whatever the temperature.
    assert info_nce(q[:1], q[:1], q[:1].repeat(5, 1), 0.07).item() == pytest.approx(math.log(6))


def test_each_location_is_matched_to_its_most_similar_key_location() -> None:
    """Key view = query view flipped: the key encoder (an exact copy at step 0) gives the
    flipped map, so every location's positive is its mirror image and the dense positives
    are the query's own projections."""
    method = densecl()
    method.eval()  # no batch-norm difference between the encoders (there is none here)
    query = views()[0]
    negatives = method.dense_queue.bank.clone()
    out = method.training_step([query, query.flip(-1)], step=0, max_steps=1, steps_per_epoch=1)
    _, dense = method.model.forward_global_and_dense(query)
    q_dense = F.normalize(method.dense_head(dense.flatten(2).transpose(1, 2)), dim=2)
    q_dense = q_dense.flatten(0, 1)
    expected = info_nce(q_dense, q_dense, negatives, method.args.temperature)
    assert out["loss_dense"].item() == pytest.approx(expected.item(), rel=1e-5)
    # Matching by position instead (ignoring the flip) gives a larger loss.
    k_dense = F.normalize(method.dense_head(dense.flip(-1).flatten(2).transpose(1, 2)), dim=2)
    by_position = info_nce(q_dense, k_dense.flatten(0, 1), negatives, method.args.temperature)
    assert by_position.item() > expected.item() + 1e-3


def test_queues_take_the_keys_and_keep_them_in_the_state_dict() -> None:
    method = densecl()
    a, b = views(batch=4)
    method.training_step([a, b], step=0, max_steps=1, steps_per_epoch=1)
    with torch.no_grad():
        pooled, dense = method.key_model.forward_global_and_dense(b)
        k = F.normalize(method.key_global_head(pooled), dim=1)
        k_dense = method.key_dense_head(dense.flatten(2).transpose(1, 2))
        k_image = F.normalize(k_dense.mean(1), dim=1)
    torch.testing.assert_close(method.global_queue.bank[:4], k)
    torch.testing.assert_close(method.dense_queue.bank[:4], k_image)
    assert int(method.global_queue.bank_ptr) == int(method.dense_queue.bank_ptr) == 4
    # Without gradients (evaluation) the queues stay as they are.
    before = method.global_queue.bank.clone()
    with torch.no_grad():
        method.training_step([a, b], step=0, max_steps=1, steps_per_epoch=1)
    assert torch.equal(method.global_queue.bank, before)
    # The queues are part of the checkpoint, so a resumed run has the same negatives.
    state = method.state_dict()
    for key in ("global_queue.bank", "global_queue.bank_ptr", "dense_queue.bank"):
        assert key in state
    other = densecl()
    assert not torch.equal(other.global_queue.bank, method.global_queue.bank)
    other.load_state_dict(state)
    assert torch.equal(other.global_queue.bank, method.global_queue.bank)
    assert int(other.global_queue.bank_ptr) == 4


def test_only_the_unpooled_map_trains_a_wrapper_with_a_detached_pool() -> None:
    for weight, trains in ((0.5, True), (0.0, False)):
        method = densecl(PooledPixels(detach_pool=True), lambda_=weight)
        method.training_step(views(), step=0, max_steps=1, steps_per_epoch=1)["loss"].backward()
        grad = method.model.wrapper.conv.weight.grad
        assert grad is not None and (grad.abs().sum() > 0) == trains


def test_dense_warmup_turns_the_dense_loss_on_later() -> None:
    method = densecl(dense_warmup_steps=3)
    for step, weight in ((0, 0.0), (2, 0.0), (3, 0.5)):
        out = method.training_step(views(), step=step, max_steps=10, steps_per_epoch=5)
        assert out["dense_loss_weight"].item() == weight
        expected = (1 - weight) * out["loss_global"] + weight * out["loss_dense"]
        assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
        method.zero_grad()
        out["loss"].backward()
        dense_grad = method.dense_head.layers[0].weight.grad
        assert dense_grad is not None and (dense_grad.abs().sum() > 0) == (weight > 0)


def test_a_1x1_map_is_a_clear_error_unless_the_dense_loss_is_off() -> None:
    method = densecl(PooledPixels(grid=1))
    with pytest.raises(ConfigError, match=r"1x1 map.*image_size.*lambda_=0"):
        method.training_step(views(), step=0, max_steps=1, steps_per_epoch=1)
    method = densecl(PooledPixels(grid=1), lambda_=0.0)
    out = method.training_step(views(), step=0, max_steps=1, steps_per_epoch=1)
    assert torch.isfinite(out["loss"])


def test_key_encoder_is_an_ema_of_the_query_encoder() -> None:
    method = densecl(momentum_start=0.9)
    optimizer = torch.optim.SGD(method.param_groups(), lr=0.5)
    key_before = [p.clone() for p in method.key_dense_head.parameters()]
    method.training_step(views(), step=0, max_steps=1, steps_per_epoch=1)["loss"].backward()
    optimizer.step()
    method.on_after_optimizer_step(step=0, max_steps=1)
    for old, key, query in zip(
        key_before, method.key_dense_head.parameters(), method.dense_head.parameters()
    ):
        torch.testing.assert_close(key, 0.9 * old + 0.1 * query)
    assert method.embedding_model() is method.model  # the query encoder is exported


@pytest.mark.parametrize(
    ("num_images", "total_steps", "queue", "warmup", "momentum"),
    [
        (None, None, 65536, 1000, 0.999),  # the paper's values
        (1_281_167, 500_000, 65536, 1000, 0.999),  # ImageNet
        (50_000, 9_750, 4096, 975, 0.998974),  # CIFAR-10, 50 epochs of 256
        (1_000, 200, 64, 20, 0.99),
        (5, 4, 1, 0, 0.99),
    ],
)
def test_automatic_options(
    num_images: int | None, total_steps: int | None, queue: int, warmup: int, momentum: float
) -> None:
    args = DenseCLArgs().resolve(num_images, total_steps)
    assert (args.memory_bank_size, args.dense_warmup_steps) == (queue, warmup)
    assert args.momentum_start == args.momentum_end == pytest.approx(momentum)
    assert args.resolve(num_images, total_steps) == args
    explicit = DenseCLArgs(
        memory_bank_size=7, dense_warmup_steps=3, momentum_start=0.5, momentum_end=0.9
    )
    assert explicit.resolve(num_images, total_steps) == explicit
    assert DenseCLArgs(momentum_start=0.9).resolve(num_images, total_steps).momentum_end == 0.9


def test_momentum_schedule() -> None:
    method = densecl(momentum_start=0.99, momentum_end=1.0)
    assert method.ema_momentum(0, 11) == pytest.approx(0.99)
    assert method.ema_momentum(5, 11) == pytest.approx(0.995)  # half way on the cosine
    assert method.ema_momentum(10, 11) == method.ema_momentum(20, 11) == 1.0
    assert densecl(momentum_start=0.99).ema_momentum(5, 11) == pytest.approx(0.99)


def test_none_means_auto_and_a_direct_build_resolves_the_paper_values() -> None:
    keys = ("memory_bank_size", "dense_warmup_steps", "momentum_start", "momentum_end")
    args = DenseCLArgs(**dict.fromkeys(keys))  # type: ignore[arg-type]
    assert [getattr(args, key) for key in keys] == ["auto"] * 4
    method = DenseCL(EmbeddingModel(PooledPixels()), {"hidden_dim": 8, "output_dim": 8})
    assert method.args.memory_bank_size == 65536 and method.args.momentum_start == 0.999
    assert method.args.momentum_end == 0.999 and method.args.dense_warmup_steps == 1000
    assert method.global_queue.bank.shape == (65536, 8)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("memory_bank_size", 0),
        ("memory_bank_size", 2.5),
        ("lambda_", 1.5),
        ("dense_warmup_steps", -1),
        ("momentum_start", 1.2),
        ("momentum_end", -0.1),
        ("temperature", 0.0),
        ("hidden_dim", 0),
        ("output_dim", True),
        ("gather_distributed", "yes"),
        ("reference_batch_size", 0),
    ],
)
def test_bad_values_name_the_option(key: str, value: object) -> None:
    with pytest.raises((ConfigError, TypeError), match=rf"method_args\.{key}"):
        from_dict(DenseCLArgs, {key: value}, "method_args")


def test_views_are_moco_v2s() -> None:
    (view,) = DenseCL.view_recipe(DenseCLTransformArgs(image_size=(32, 32)))
    assert view.num_views == 2 and view.size == (32, 32)
    assert view.crop_scale == (0.2, 1.0)
    jitter = view.color_jitter
    assert jitter is not None
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == pytest.approx(
        (0.4, 0.4, 0.4, 0.1)
    )
    assert (view.grayscale_prob, view.blur_prob, view.hflip_prob) == (0.2, 0.5, 0.5)
    assert view.solarize_prob == 0.0


def test_wrong_number_of_views() -> None:
    with pytest.raises(ConfigError, match="2 views"):
        densecl().training_step(views() * 2, step=0, max_steps=1, steps_per_epoch=1)
