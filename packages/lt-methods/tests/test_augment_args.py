"""``transform_args.augment``: a user's own batched augmentation (e.g. kornia) per view group."""

from __future__ import annotations

import json
from typing import Any

import pytest
from torch import Tensor, nn

from lt_core import ConfigTypeError, from_dict, to_dict
from lt_methods import DINO, get_method, list_methods
from lt_methods._dino_args import DINOGlobalView1Args, DINOLocalViewArgs, DINOTransformArgs


class Darken(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * 0.5


def recipe(name: str, values: dict[str, Any]) -> list[Any]:
    cls = get_method(name)
    return cls.view_recipe(from_dict(cls.TransformArgs, values, "transform_args"))


@pytest.mark.parametrize("name", list_methods())
def test_augment_applies_to_every_view_group_and_is_recorded_readably(name: str) -> None:
    darken = Darken()
    assert all(cfg.augment is None for cfg in recipe(name, {}))
    views = recipe(name, {"augment": darken, "image_size": (32, 32)})
    assert views and all(cfg.augment is darken for cfg in views)
    cls = get_method(name)
    record = to_dict(from_dict(cls.TransformArgs, {"augment": darken}, "transform_args"))
    assert json.loads(json.dumps(record))["augment"] == "Darken()"


def test_dino_groups_may_have_their_own_augment_or_none() -> None:
    shared, local = Darken(), nn.Hardtanh(0.0, 1.0)
    values = {
        "augment": shared,
        "global_view_1": {"augment": nn.Identity()},  # switched off for this view
        "local_view": {"augment": local, "num_views": 2},
    }
    global0, global1, locals_ = DINO.view_recipe(from_dict(DINOTransformArgs, values, "t"))
    assert (global0.augment, global1.augment, locals_.augment) == (shared, None, local)
    only_local = DINO.view_recipe(DINOTransformArgs(local_view=DINOLocalViewArgs(augment=local)))
    assert [cfg.augment for cfg in only_local] == [None, None, local]


@pytest.mark.parametrize(
    "values",
    [
        {"augment": "kornia.augmentation.RandomRotation(30)"},  # as the CLI gives it
        {"global_view_1": {"augment": "RandomRotation"}},
        {"local_view": {"augment": 30}},
    ],
    ids=["top", "global_view_1", "local_view"],
)
def test_augment_that_is_not_a_callable_names_the_key_and_the_python_api(
    values: dict[str, Any],
) -> None:
    key = "transform_args." + ".".join([*(k for k in values if k != "augment"), "augment"])
    with pytest.raises(ConfigTypeError, match=rf"^{key} must be a callable .* Fix: pass"):
        from_dict(DINOTransformArgs, values, "transform_args")
    blocks = {"global_view_1": DINOGlobalView1Args, "local_view": DINOLocalViewArgs}
    built = {k: blocks[k](**v) if k in blocks else v for k, v in values.items()}
    with pytest.raises(ConfigTypeError, match=rf"^{key} must be a callable"):
        DINOTransformArgs(**built)  # built in Python, not through from_dict
