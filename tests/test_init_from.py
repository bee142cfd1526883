"""Fine-tuning from a published checkpoint (model.init_from): a converted random-weight dla_34 checkpoint onto a
3-class dataset of one's own, through the config and through train.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason='fine-tuning from a .pth needs PyTorch: pip install -e ".[pretrained]"')

from centernet_tf.config import load_config  # noqa: E402
from centernet_tf.deploy.convert import COCO_CLASS_NAMES, load_official_checkpoint  # noqa: E402
from centernet_tf.model.centernet import HEATMAP_BIAS_INIT  # noqa: E402
from centernet_tf.train.build import model_from_config  # noqa: E402
from tests.torch_reference import DLASegDCN, PoseResNet, fill_randomly  # noqa: E402
from tests.voc_files import write_voc_xml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["person", "kangaroo", "dog"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "ctdet_coco_dla_2x.pth"
    network = fill_randomly(DLASegDCN(80), seed=4)
    torch.save({"epoch": 230, "state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, path)
    return path


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A res_18 checkpoint: the command-line run needs any arch, and this one builds and trains fastest."""
    path = tmp_path_factory.mktemp("zoo") / "ctdet_coco_resdcn18.pth"
    network = fill_randomly(PoseResNet(18, 80), seed=4)
    torch.save({"epoch": 140, "state_dict": {f"module.{k}": v for k, v in network.state_dict().items()}}, path)
    return path


def _voc(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        write_voc_xml(root / "Annotations" / f"{i}.xml", [(CLASSES[i % 3], (10, 12, 40, 50))], f"{i}.jpg", (64, 64))
    return root


def _overrides(checkpoint: Path, root: Path, arch: str = "dla_34") -> list[str]:
    model = {"dla_34": ["model.backbone=dla34", "model.neck=dla_up_dcn", "model.head_conv=256"],
             "res_18": ["model.backbone=resnet18", "model.neck=deconv3_256", "model.head_conv=64"]}[arch]
    return [*model, "model.head_batch_norm=false",
            "model.input_size=[64,64]", f"model.init_from={checkpoint}", f"model.init_arch={arch}",
            "data.format=voc", f"data.root={root}", "data.train_split=null", "data.val_split=null",
            f"data.class_names=[{', '.join(CLASSES)}]", "train.epochs=1", "train.steps_per_epoch=2",
            "train.batch_size=2", "train.warmup_steps=1", "train.jit_compile=false"]


def test_every_tensor_is_the_checkpoints_and_matching_classes_take_over_their_channels(
    checkpoint: Path, tmp_path: Path, caplog
) -> None:
    import logging

    config = load_config(None, _overrides(checkpoint, _voc(tmp_path / "voc")))
    with caplog.at_level(logging.INFO):
        model = model_from_config(config, CLASSES)
    source = load_official_checkpoint(checkpoint, "dla_34", input_size=(None, None))
    heatmap = model.heatmap_output_layers[-1]
    by_name = {layer.name: layer for layer in [*source.backbone.layers, *source.layers]}
    compared = 0
    for layer in [*model.backbone.layers, *model.layers]:
        if layer.weights and layer is not model.backbone and layer is not heatmap:
            for mine, theirs in zip(layer.get_weights(), by_name[layer.name].get_weights(), strict=True):
                np.testing.assert_array_equal(mine, theirs)
                compared += 1
    assert compared > 300
    kernel, bias = heatmap.get_weights()
    source_kernel, source_bias = source.heatmap_output_layers[-1].get_weights()
    for name in ("person", "dog"):
        np.testing.assert_array_equal(kernel[..., CLASSES.index(name)], source_kernel[..., COCO_CLASS_NAMES.index(name)])
        assert bias[CLASSES.index(name)] == source_bias[COCO_CLASS_NAMES.index(name)]
    assert bias[CLASSES.index("kangaroo")] == pytest.approx(HEATMAP_BIAS_INIT)
    # The checkpoint's input normalisation (COCO's, on BGR) comes with it: the weights see the inputs they learnt on.
    x = np.random.default_rng(1).integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x)["wh"].numpy(), source(x)["wh"].numpy(), atol=1e-5)
    assert "heatmap classes taken over: person, dog; started at the focal prior: kangaroo" in caplog.text


def test_train_py_fine_tunes_from_the_checkpoint(small_checkpoint: Path, tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "train.py"), "--run-dir", str(tmp_path / "run")]
    for override in _overrides(small_checkpoint, _voc(tmp_path / "voc"), "res_18"):
        command += ["--set", override]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "model.init_from: loaded" in done.stderr and "taken over: person, dog" in done.stderr
    assert (tmp_path / "run" / "model.keras").is_file()
