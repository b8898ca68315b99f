"""The commands of lightly-train 0.18.0's documentation run unchanged.

Each command is copied from the peer's docs as a user would paste it; the test only adds
options that make it fast (1 epoch on 16 small images on the CPU) where the command does
not set them itself, and runs it through our CLI in a folder laid out like the docs'
examples (``my_data_dir``, ``images``, ``image2.jpg``...).
"""

from __future__ import annotations

import datetime
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from conftest import QUICKSTART_DATA

import lightly_train
from lightly_train._cli import main

FAST = {
    "epochs": "1",
    "batch_size": "8",
    "accelerator": "cpu",
    "num_workers": "0",
    "progress_bar": "false",
    "overwrite": "true",
    "transform_args.image_size": "[32,32]",
}

FAST_API = {
    "epochs": 1,
    "batch_size": 8,
    "accelerator": "cpu",
    "num_workers": 0,
    "progress_bar": False,
}

PRETRAIN = [
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet18"',
    'lightly-train pretrain out="out/my_experiment" data=\'["image2.jpg", "image3.jpg", "my_data_dir"]\' model="torchvision/resnet18"',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50" loggers.jsonl.flush_logs_every_n_steps=10',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50" loggers.jsonl=null',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50" loggers.tensorboard.name="my_experiment"',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50" loggers.tensorboard=null',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50" loggers.wandb.project="my_project" loggers.wandb.name="my_experiment" loggers.wandb.log_model=False',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50" loggers.wandb=null',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet18" transform_args.image_size="[64,64]"',
    'lightly-train pretrain out=out/my_experiment data=my_data_dir model="torchvision/resnet18" method="simclr"',
    'lightly-train pretrain out=out/my_experiment data=my_data_dir model="torchvision/resnet18" method="dino"',
    'lightly-train pretrain out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50"',
    'srun lightly-train train out="out/my_experiment" data="my_data_dir" model="torchvision/resnet50"',
    "lightly-train pretrain out=out data=imagenet/train model=torchvision/resnet18 method=simclr",
]

# Run after a pretraining run into out/my_experiment and one into out.
AFTER = [
    'lightly-train export out="my_exported_model.pt" checkpoint="out/my_experiment/checkpoints/last.ckpt" part="model" format="torch_state_dict"',
    "lightly-train embed out=my_embeddings.pth data=my_data_dir checkpoint=out/my_experiment/checkpoints/last.ckpt format=torch",
    "lightly-train export checkpoint=out/checkpoints/last.ckpt out=out/model.pth",
    "lightly-train export checkpoint=out/checkpoints/last.ckpt out=out/model_sd.pth format=torch_state_dict",
    "lightly-train export checkpoint=out/checkpoints/last.ckpt out=out/embedding_model.pth part=embedding_model format=torch_model",
    "lightly-train embed out=embeddings.csv data=images checkpoint=out/checkpoints/last.ckpt format=csv",
    "lightly-train embed out=embeddings_lightly.csv data=images checkpoint=out/checkpoints/last.ckpt format=lightly_csv",
    'lightly-train embed out=embeddings_448.csv data=images checkpoint=out/checkpoints/last.ckpt format=csv image_size="[48, 64]"',
    "lightly-train list_models",
    "lightly-train --help",
    "lightly-train pretrain help",
]


@pytest.fixture
def docs_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder laid out as the docs' examples expect, as the working directory."""
    jpegs = sorted(QUICKSTART_DATA.rglob("*.jpg"))
    for name in ("my_data_dir", "images", "imagenet/train"):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        for i, src in enumerate(jpegs[:16]):
            shutil.copy(src, folder / f"img_{i:02d}.jpg")
    for name in ("image2.jpg", "image3.jpg"):
        shutil.copy(jpegs[20], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    argv = words[words.index("lightly-train") + 1 :]
    if argv and argv[0] in ("train", "pretrain") and "help" not in argv:
        given = {w.split("=", 1)[0] for w in argv[1:]}
        argv += [f"{k}={v}" for k, v in FAST.items() if k not in given]
    return argv


@pytest.mark.slow
def test_documented_commands_run_unchanged(docs_folder: Path) -> None:
    for command in PRETRAIN + AFTER:
        assert main(_argv(command)) == 0, command
    reference = torch.load("out/my_experiment/exported_models/exported_last.pt", weights_only=True)
    exported = torch.load("my_exported_model.pt", weights_only=True)
    assert all(torch.equal(reference[k], exported[k]) for k in reference)
    embeddings = torch.load("my_embeddings.pth", weights_only=True)
    assert len(embeddings["filenames"]) == 16 and embeddings["embeddings"].shape[0] == 16
    assert Path("embeddings.csv").read_text().startswith("filename,embedding_0,")
    assert Path("embeddings_lightly.csv").read_text().splitlines()[0].endswith(",labels")


def test_documented_python_calls_run_unchanged(docs_folder: Path) -> None:
    """Option shapes of the peer's Python docs, all in one fast run."""
    lightly_train.pretrain(
        out="out/my_experiment",
        data="my_data_dir",
        model="torchvision/resnet18",
        method="simclr",
        **FAST_API,  # type: ignore[arg-type]
        loggers={"jsonl": {"flush_logs_every_n_steps": 10}, "tensorboard": None},
        callbacks={
            "model_export": {"every_n_epochs": 3},
            "model_checkpoint": {
                "every_n_epochs": 1,
                "every_n_train_steps": 1000,
                "train_time_interval": datetime.timedelta(minutes=30),
                "save_on_train_epoch_end": True,
                "dirpath": "out/custom_checkpoints",
                "filename": "epoch{epoch}-step{step}",
                "verbose": True,
                "save_last": True,
                "save_top_k": 3,
                "save_weights_only": False,
            },
        },
        transform_args={
            "image_size": (32, 32),
            "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
            "random_resize": {
                "min_scale": 0.2,
                "max_scale": 1.0,
                "min_ratio": 0.75,
                "max_ratio": 1.33,
            },
            "random_flip": {"horizontal_prob": 0.7, "vertical_prob": 0.2},
            "random_rotation": {"prob": 0.5, "degrees": 30},
            "color_jitter": {
                "prob": 0.8,
                "strength": 2.0,
                "brightness": 0.4,
                "contrast": 0.4,
                "saturation": 0.4,
                "hue": 0.1,
            },
            "random_gray_scale": 0.2,
            "gaussian_blur": {"prob": 0.5, "sigmas": (0.1, 2.0), "blur_limit": (3, 7)},
            "solarize": {"prob": 0.2, "threshold": 0.5},
        },
        optim="adamw",
        optim_args={"lr": 3e-4, "betas": (0.9, 0.95), "weight_decay": 0.04},
    )
    assert sorted(p.name for p in Path("out/custom_checkpoints").iterdir()) == [
        "epoch1-step2.ckpt",
        "last.ckpt",
    ]
    lightly_train.pretrain(
        out="out/longer_run",
        data="my_data_dir",
        model="torchvision/resnet18",
        checkpoint="out/my_experiment/exported_models/exported_last.pt",
        **FAST_API,  # type: ignore[arg-type]
        method="dino",
        transform_args={
            "image_size": (32, 32),
            "random_flip": {"vertical_prob": 0.5},
            "random_rotation": {"prob": 0.5, "degrees": (-10, 45)},
            "global_view_1": {"gaussian_blur": {"prob": 0.1}, "solarize": {"prob": 0.2}},
            "local_view": {
                "num_views": 2,
                "view_size": (16, 16),
                "random_resize": {"min_scale": 0.05, "max_scale": 0.14},
                "gaussian_blur": {"prob": 0.5, "sigmas": (0.1, 2.0), "blur_limit": 0},
            },
        },
    )
    lightly_train.export(
        out="my_exported_model.pt",
        checkpoint="out/custom_checkpoints/last.ckpt",  # dirpath of model_checkpoint
        part="model",
        format="torch_state_dict",
    )
    lightly_train.embed(
        out="my_embeddings.pth",
        data="my_data_dir",
        checkpoint="out/longer_run/checkpoints/last.ckpt",
        format="torch",
    )
    assert "simclr" in lightly_train.list_methods() and lightly_train.list_models()


def test_peer_features_we_lack_fail_clearly(
    docs_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        _argv(
            'lightly-train pretrain out="out/x" data="my_data_dir" model="torchvision/resnet18" method="distillation"'
        )
    )
    assert code == 2
    err = capsys.readouterr().err
    # The peer's default method exists, but its teacher is never downloaded: the error
    # says what to pass instead.
    assert "needs a teacher (method_args.teacher)" in err and "Traceback" not in err
    assert "Nothing is downloaded" in err
    assert main(["pretrain", "out=out/y", "model=torchvision/resnet18"]) == 2
    assert "pretrain needs data=..." in capsys.readouterr().err
