"""lt-methods: self-supervised learning methods (heads, losses, view recipes).

Each method is a :class:`Method` registered by name; :data:`DEFAULT_METHOD` is
``"simclr"`` (see ``_registry.py`` for why).

``lightly`` (for the losses and heads) is imported when a method is built, not when this
package is imported.
"""

from lt_methods._barlow_twins import BarlowTwins, BarlowTwinsArgs, BarlowTwinsTransformArgs
from lt_methods._byol import (
    BYOL,
    BYOLArgs,
    BYOLColorJitterArgs,
    BYOLGaussianBlurArgs,
    BYOLSecondViewArgs,
    BYOLSecondViewGaussianBlurArgs,
    BYOLTransformArgs,
)
from lt_methods._densecl import DenseCL
from lt_methods._densecl_args import DenseCLArgs, DenseCLTransformArgs
from lt_methods._dino import DINO
from lt_methods._dino_args import (
    DINOArgs,
    DINOColorJitterArgs,
    DINOGaussianBlurArgs,
    DINOGlobalView1Args,
    DINOGlobalView1GaussianBlurArgs,
    DINOLocalViewArgs,
    DINOLocalViewRandomResizeArgs,
    DINORandomResizeArgs,
    DINOTransformArgs,
)
from lt_methods._distillation import Distillation
from lt_methods._distillation_args import (
    DistillationArgs,
    DistillationColorJitterArgs,
    DistillationRandomResizeArgs,
    DistillationTransformArgs,
    missing_teacher_message,
)
from lt_methods._lars import LARS
from lt_methods._method import Method
from lt_methods._moco import (
    MoCoV2,
    MoCoV2Args,
    MoCoV2ColorJitterArgs,
    MoCoV2RandomResizeArgs,
    MoCoV2TransformArgs,
)
from lt_methods._mocov3 import MoCoV3, MoCoV3Args, MoCoV3RandomResizeArgs, MoCoV3TransformArgs
from lt_methods._registry import (
    DEFAULT_METHOD,
    OPTIMIZER_NAMES,
    get_method,
    list_methods,
    register_method,
)
from lt_methods._simclr import SimCLR, SimCLRArgs, SimCLRTransformArgs
from lt_methods._swav import SwAV
from lt_methods._swav_args import SwAVArgs, SwAVTransformArgs
from lt_methods._transform_args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    MethodTransformArgs,
    NormalizeArgs,
    RandomFlipArgs,
    RandomResizeArgs,
    RandomRotationArgs,
    SolarizeArgs,
)
from lt_methods._vicreg import VICReg, VICRegArgs, VICRegTransformArgs

__version__ = "0.1.0"

__all__ = [
    "BYOL",
    "DEFAULT_METHOD",
    "DINO",
    "LARS",
    "OPTIMIZER_NAMES",
    "BYOLArgs",
    "BYOLColorJitterArgs",
    "BYOLGaussianBlurArgs",
    "BYOLSecondViewArgs",
    "BYOLSecondViewGaussianBlurArgs",
    "BYOLTransformArgs",
    "BarlowTwins",
    "BarlowTwinsArgs",
    "BarlowTwinsTransformArgs",
    "ColorJitterArgs",
    "DINOArgs",
    "DINOColorJitterArgs",
    "DINOGaussianBlurArgs",
    "DINOGlobalView1Args",
    "DINOGlobalView1GaussianBlurArgs",
    "DINOLocalViewArgs",
    "DINOLocalViewRandomResizeArgs",
    "DINORandomResizeArgs",
    "DINOTransformArgs",
    "DenseCL",
    "DenseCLArgs",
    "DenseCLTransformArgs",
    "Distillation",
    "DistillationArgs",
    "DistillationColorJitterArgs",
    "DistillationRandomResizeArgs",
    "DistillationTransformArgs",
    "GaussianBlurArgs",
    "Method",
    "MethodTransformArgs",
    "MoCoV2",
    "MoCoV2Args",
    "MoCoV2ColorJitterArgs",
    "MoCoV2RandomResizeArgs",
    "MoCoV2TransformArgs",
    "MoCoV3",
    "MoCoV3Args",
    "MoCoV3RandomResizeArgs",
    "MoCoV3TransformArgs",
    "NormalizeArgs",
    "RandomFlipArgs",
    "RandomResizeArgs",
    "RandomRotationArgs",
    "SimCLR",
    "SimCLRArgs",
    "SimCLRTransformArgs",
    "SolarizeArgs",
    "SwAV",
    "SwAVArgs",
    "SwAVTransformArgs",
    "VICReg",
    "VICRegArgs",
    "VICRegTransformArgs",
    "get_method",
    "list_methods",
    "missing_teacher_message",
    "register_method",
]
