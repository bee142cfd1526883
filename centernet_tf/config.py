"""Experiment configuration: dataclasses loaded from YAML, with ``section.key=value`` overrides.

Unknown keys and wrongly typed values are errors that name the key, so a typo in a config never trains a
different experiment silently.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from centernet_tf.config_ranges import NUMBER_RANGES
from centernet_tf.data.formats import source_names
from centernet_tf.data.formats.base import image_check_for
from centernet_tf.data.image_check import MAX_IMAGE_PIXELS


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    #: Network input (height, width), both divisible by 32.
    input_size: list[int] = field(default_factory=lambda: [512, 512])
    #: None (random init), "imagenet" (download, or the Keras cache ~/.keras/models) or a weights file.
    backbone_weights: str | None = None
    #: How backbone features reach the heads: a registered neck (``centernet_tf.available_necks()``; each one's
    #: docstring says what it is for), e.g. "deconv3" (the paper's), "fpn" (small objects), "ida_up" (DLA-34).
    neck: str = "deconv3"
    head_conv: int = 64
    #: Heads as Conv3x3 + BN + ReLU + Conv1x1 (true) or the original code's Conv3x3 with bias + ReLU + Conv1x1.
    head_batch_norm: bool = True
    #: Start the box-size head at the training boxes' median size, not 0 (the paper's): not better when measured.
    size_prior: bool = False
    #: null, or the stride of a backbone level the box head also reads (e.g. 16: large objects' shapes; CenterNet).
    box_features_stride: int | None = None
    #: Fine-tune from a published model: an original CenterNet .pth (init_arch: its --arch, init_dataset: coco or
    #: pascal) or a .keras file. Every tensor that fits this model is loaded, the heatmap channels of classes
    #: with the same name are taken over (the rest start afresh), and the input normalisation is the checkpoint's.
    init_from: str | None = None
    init_arch: str | None = None
    init_dataset: str = "coco"


@dataclass
class DataConfig:
    #: A registered source (centernet_tf.data.formats.source_names()): "shapes" (built-in synthetic data),
    #: "coco" (COCO JSON), "voc" (Pascal VOC XML directory) or "yolo" (YOLO txt, Ultralytics/Roboflow layout).
    format: str = "shapes"
    #: Shapes: where the generated dataset is cached (default: ~/.cache/centernet_tf/shapes).
    shapes_dir: str | None = None
    shapes_num_train: int = 1000
    shapes_num_val: int = 200
    #: Shapes image (height, width).
    shapes_image_size: list[int] = field(default_factory=lambda: [128, 128])
    shapes_seed: int = 0
    #: COCO: annotation JSON files and image directories.
    train_annotations: str = ""
    train_images: str = ""
    val_annotations: str = ""
    val_images: str = ""
    #: COCO: optional test split (load_split(data, "test")); unset: asking for "test" is an error.
    test_annotations: str = ""
    test_images: str = ""
    #: VOC: directory holding Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt. YOLO: the dataset folder.
    root: str = ""
    #: VOC: split file names (null: every XML file). YOLO: split folder names (e.g. train / valid / test,
    #: under root/<split>/images or root/images/<split>) or the train/val/test keys of dataset_yaml.
    train_split: str | None = "trainval"
    val_split: str | None = "test"
    #: Optional third split for VOC / YOLO (same meaning as above); null: no test split.
    test_split: str | None = None
    #: VOC folder names under root; the same folder for both reads XML beside the images ("" is root itself),
    #: and "{split}" in them makes each split a folder (e.g. "{split}" for Roboflow's train/ and valid/).
    annotations_dir: str = "Annotations"
    images_dir: str = "JPEGImages"
    #: VOC: pair an xml with the image of its own stem ("stem"), or with the image its <filename> names, inside
    #: images_dir only ("filename"; for datasets whose xml and image names differ).
    voc_match_images_by: str = "stem"
    #: YOLO: an Ultralytics data.yaml (names: as a list or {id: name}; optional path/train/val/test). Without
    #: it, root/data.yaml is read when present; class_names, when set, take precedence over its names.
    dataset_yaml: str = ""
    #: TensorFlow Datasets: the dataset (e.g. voc/2007), where it is prepared (null: tfds' default), where its
    #: images are written (null: ~/.cache/centernet_tf/tfds), and whether tfds may download it.
    tfds_name: str = ""
    tfds_data_dir: str | None = None
    tfds_cache_dir: str | None = None
    tfds_download: bool = False
    #: Fix the class list (and order); None takes it from the training annotations (YOLO: from dataset_yaml).
    class_names: list[str] | None = None
    max_objects: int = 128
    #: Images with more pixels are skipped as "image too large" (Pillow's decompression-bomb limit by default).
    max_image_pixels: int = MAX_IMAGE_PIXELS
    #: How image files are checked when a split is loaded (threads: check_workers, null = one per CPU):
    #: "decode" (header + a 1/8-scale decode, catches truncated files), "header", or "annotation_sizes" (trust the
    #: width/height a COCO or VOC annotation gives, only check the file exists: for very large sets).
    image_check: str = "decode"
    check_workers: int | None = None
    flip: bool = True
    #: CornerNet-style random scale (scale_range) + crop (centre crop_border away from the edges); off by
    #: default until its benefit is benchmarked.
    random_crop: bool = False
    scale_range: list[float] = field(default_factory=lambda: [0.6, 1.4])
    crop_border: float = 0.25
    #: Brightness / contrast / saturation jitter strength (CenterNet uses 0.4) and PCA lighting std (0.1).
    colour_jitter: float = 0.0
    lighting_std: float = 0.0
    #: Probability that a training sample is a mosaic: four augmented photos tiled 2 x 2 and an input-sized
    #: window of the tiling cut at random (Ultralytics' mosaic); 0 (default) turns it off. A mosaic can hold
    #: more objects than one photo: beyond max_objects random ones are left out of its targets.
    mosaic: float = 0.0


@dataclass
class LossConfig:
    """Exactly :class:`centernet_tf.model.losses.CenterNetLoss`'s arguments, which it checks and the model saves."""
    heatmap_weight: float = 1.0
    wh_weight: float = 0.1
    offset_weight: float = 1.0
    focal_alpha: float = 2.0  # the focal loss' exponents, as the paper
    focal_beta: float = 4.0
    #: Box regression: "l1" (the paper: width/height at the centre, L1 in output pixels, weight 0.1) or
    #: "giou_ttf" (TTFNet: distances to the box sides at every pixel of a Gaussian area, GIoU loss; TTFNet
    #: weighs it 5, so set wh_weight: 5). Saved with the model: it decides the heads and the decoding.
    box: str = "l1"
    #: Heatmap Gaussians' radius: "cornernet" (CornerNet's and CenterNet's formula; its quirk makes large boxes'
    #: radii several times what its IoU argument says), "exact" (that argument solved: see targets.gaussian_radius)
    #: or "elliptic" (TTFNet: 0.54 of the half-width and half-height, so the heatmap tells wide from tall boxes).
    gaussian_radius: str = "cornernet"


@dataclass
class TrainConfig:
    epochs: int = 10
    #: Train about this many minutes instead of train.epochs: the epochs that fit, from the step time, re-planned
    #: after each epoch from its wall time (evaluations included; the final one and saving are extra).
    time_budget_minutes: float | None = None
    batch_size: int = 16
    #: Peak Adam learning rate; None scales base_learning_rate linearly: base * batch_size / 32.
    learning_rate: float | None = None
    #: Learning rate per batch of 32 images (the paper's 1.25e-4), used when learning_rate is None.
    base_learning_rate: float = 1.25e-4
    #: After a linear warm-up over warmup_steps: "constant", "step" (x lr_decay_factor at each epoch of
    #: lr_decay_epochs, e.g. the paper's [90, 120] of 140) or "cosine" (decay to 0 at the last step).
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    lr_decay_epochs: list[int] = field(default_factory=list)
    lr_decay_factor: float = 0.1
    #: Transfer learning: train the first N epochs with the backbone frozen (weights and BatchNorm statistics),
    #: then unfreeze it and fine-tune everything for the remaining epochs. 0: train everything from the start.
    freeze_backbone_epochs: int = 0
    #: Peak learning rate of the fine-tuning phase (its own warm-up and decay); None: a tenth of the first.
    fine_tune_learning_rate: float | None = None
    #: Let the backbone's BatchNorm layers update (statistics and scale/offset) while fine-tuning. Off by
    #: default: small batches would overwrite the pretrained statistics.
    fine_tune_batch_norm: bool = False
    #: Keep the backbone layers that compute its stride-N features (stem and first stages) frozen while
    #: fine-tuning, as detection libraries freeze the stem (mmdetection's frozen_stages): their low-level
    #: features transfer as they are, and on a CPU their backward pass is half the backbone's.
    #: 0: none. Backbones of one stack (not the hourglasses, whose stride-4 features end a whole hourglass).
    fine_tune_frozen_stride: int = 0
    #: Exponential moving average of the weights and BatchNorm statistics (centernet_tf.train.ema): evaluation,
    #: best_model.keras and model.keras use the average. Momentum per step after a warm-up ramp (e.g. 0.995:
    #: about the last 200 steps); null: off.
    ema_momentum: float | None = None
    #: Training batches on which the average's BatchNorm statistics are re-estimated before each evaluation and
    #: before saving (an averaged network's activations do not have the averaged statistics); 0: off.
    ema_batch_norm_batches: int = 8
    #: Clip each gradient update to this global norm (None: no clipping).
    gradient_clip_norm: float | None = None
    #: None: one pass over the training set per epoch.
    steps_per_epoch: int | None = None
    seed: int = 0
    #: XLA-compile the training step: true, false or "auto" (Keras' rule: on with a GPU/TPU, off on CPU-only
    #: machines, where it made every shipped config slower per step: benchmarks/results/train_step_time_*.json).
    jit_compile: bool | str = "auto"
    #: tf.distribute: "none" (one device), "mirrored" (all local GPUs) or "multi_worker" (the TF_CONFIG cluster).
    #: batch_size is the global batch, split across the replicas.
    distribute: str = "none"
    #: "none" (float32), "bfloat16", "float16" (with loss scaling) or "auto": layers compute in half precision
    #: with float32 weights; heads, losses and decoding stay float32, and the saved model is float32. "auto" is
    #: bfloat16 where the hardware computes it natively (a CPU with AVX512-BF16 or AMX, a GPU of compute
    #: capability 8.0+), float16 on older GPUs (7.x), float32 otherwise (see train.precision.resolve_mixed_precision).
    mixed_precision: str = "none"
    #: Back up weights, optimizer state and epoch after every epoch in <run_dir>/backup, so a killed run
    #: started again with the same command continues where it stopped (the backup is removed on success).
    resume: bool = True


@dataclass
class EvalConfig:
    max_detections: int = 100
    score_threshold: float = 0.01
    nms: bool = False
    nms_iou_threshold: float = 0.5
    #: With nms: "hard" (remove) or "soft" (Gaussian soft-NMS, lower the scores); across classes or per class.
    nms_method: str = "hard"
    nms_class_agnostic: bool = False
    #: Test-time augmentation (saved with the model like the settings above): average the heatmap and wh of
    #: the image and its mirror; run at several zooms and merge per class (soft_nms as the original, or nms).
    flip_test: bool = False
    test_scales: list[float] = field(default_factory=lambda: [1.0])
    scale_merge: str = "soft_nms"
    #: The Gaussian's sigma of the soft-NMS merge (of scales, or of ``nms_method: soft``), as the original.
    soft_nms_sigma: float = 0.5
    #: Above: exactly CenterNetDecoder's settings (a test holds them equal). Below: running the evaluation.
    batch_size: int = 8
    #: COCO evaluation of the val split every N epochs during training (0: only after the last epoch);
    #: the best model by ``best_metric`` is kept as best_model.keras.
    every_n_epochs: int = 0
    best_metric: str = "mAP"


@dataclass
class Config:
    name: str = "shapes_resnet18"
    output_dir: str = "runs"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConfigError(ValueError):
    """A config file or override that does not fit the schema."""


def _check_type(value: Any, annotation: Any, key: str) -> Any:
    """Validate (and lightly coerce: int -> float, tuple -> list) ``value`` against a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not match {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_check_type(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number the user meant.
        try:
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected int, got {value!r}")
    if isinstance(annotation, type) and isinstance(value, annotation):
        return value
    raise ConfigError(f"{key}: expected {getattr(annotation, '__name__', annotation)}, got {value!r}")


def _apply(target: Any, values: dict[str, Any], prefix: str = "") -> None:
    names = typing.get_type_hints(type(target))
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; valid keys here: {', '.join(sorted(names))}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: expected a mapping of {', '.join(sorted(vars(current)))}")
            _apply(current, value, prefix=f"{path}.")
        else:
            setattr(target, key, _check_type(value, names[key], path))


def _read_yaml(path: Path) -> Any:
    """The YAML in ``path``; a binary file, a syntax error or a ``!!python`` tag is a one-line ConfigError."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file") from None
    except yaml.constructor.ConstructorError as error:
        where = f" (line {error.problem_mark.line + 1})" if error.problem_mark else ""
        raise ConfigError(f"{path}: {error.problem}{where}; a config holds plain values only") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', None) or error}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> ``(["train", "epochs"], 3)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({getattr(error, 'problem', error)})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file (if any), then each ``section.key=value`` override, validated."""
    config = Config()
    if path is not None:
        values = _read_yaml(Path(path))
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        _apply(config, values)
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        _apply(config, nested)
    validate(config)
    return config


def _check_ranges(config: Config) -> None:
    for key, interval in NUMBER_RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not isinstance(item, bool) and item not in interval:
                raise ConfigError(f"{key} must be in {interval}, got {value}")


def validate(config: Config) -> None:
    """Every number in its range (:data:`~centernet_tf.config_ranges.NUMBER_RANGES`), then the checks that types alone cannot express."""
    _check_ranges(config)
    if len(config.model.input_size) != 2 or any(s <= 0 or s % 32 for s in config.model.input_size):
        raise ConfigError(f"model.input_size must be [height, width] divisible by 32, got {config.model.input_size}")
    if config.data.format not in source_names():
        raise ConfigError(f"data.format must be one of {', '.join(source_names())}; got {config.data.format!r}")
    if config.train.lr_schedule not in ("constant", "step", "cosine"):
        raise ConfigError(f"train.lr_schedule must be constant, step or cosine, got {config.train.lr_schedule!r}")
    if config.train.lr_schedule == "step" and not config.train.lr_decay_epochs:
        raise ConfigError("train.lr_schedule=step needs train.lr_decay_epochs, e.g. [90, 120]")
    budget = config.train.time_budget_minutes
    frozen = config.train.freeze_backbone_epochs
    if frozen < 0 or (budget is None and frozen >= config.train.epochs):
        raise ConfigError(
            f"train.freeze_backbone_epochs must be in [0, train.epochs), got {config.train.freeze_backbone_epochs} "
            f"with {config.train.epochs} epochs (the fine-tuning phase needs at least one epoch)"
        )
    stride = config.train.fine_tune_frozen_stride
    if stride & (stride - 1):
        raise ConfigError(f"train.fine_tune_frozen_stride must be 0 or a power of two, got {stride}")
    if stride and not frozen:
        raise ConfigError("train.fine_tune_frozen_stride acts while fine-tuning: "
                          "it needs train.freeze_backbone_epochs >= 1")
    try:
        image_check_for(config.data)  # the image check validates its own settings
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if config.train.mixed_precision not in ("none", "bfloat16", "float16", "auto"):
        raise ConfigError(
            f"train.mixed_precision must be none, bfloat16, float16 or auto, got {config.train.mixed_precision!r}"
        )
    if isinstance(config.train.jit_compile, str) and config.train.jit_compile != "auto":
        raise ConfigError(f"train.jit_compile must be true, false or auto, got {config.train.jit_compile!r}")
    if config.train.distribute not in ("none", "mirrored", "multi_worker"):
        raise ConfigError(f"train.distribute must be none, mirrored or multi_worker, got {config.train.distribute!r}")
    from centernet_tf.model.losses import CenterNetLoss  # local: keeps Keras out of reading a config

    try:  # the loss checks its own settings
        CenterNetLoss(**dataclasses.asdict(config.loss))
    except ValueError as error:
        raise ConfigError(f"loss.{error}") from None
    if budget is not None and config.train.distribute == "multi_worker":
        raise ConfigError("train.time_budget_minutes is not available with train.distribute=multi_worker; set train.epochs")
    if not config.eval.test_scales:
        raise ConfigError("eval.test_scales must list at least one zoom factor, e.g. [1.0]")
    from centernet_tf.model.decode import CenterNetDecoder, decoder_settings  # local: keeps Keras out of reading a config

    try:  # the decoder checks its own settings (allowed values are stated there once)
        CenterNetDecoder(**decoder_settings(config.eval))
    except ValueError as error:
        raise ConfigError(f"eval.{error}") from None
    if config.model.init_from and str(config.model.init_from).endswith(".pth") and not config.model.init_arch:
        raise ConfigError("model.init_from is an original .pth: set model.init_arch to its --arch (e.g. dla_34)")
    if config.model.init_dataset not in ("coco", "pascal"):
        raise ConfigError(f"model.init_dataset must be coco or pascal, got {config.model.init_dataset!r}")
    if config.data.voc_match_images_by not in ("stem", "filename"):
        raise ConfigError(f"data.voc_match_images_by must be stem or filename, got {config.data.voc_match_images_by!r}")
    if config.eval.best_metric not in ("mAP", "mAP50", "mAP75"):
        raise ConfigError(f"eval.best_metric must be mAP, mAP50 or mAP75, got {config.eval.best_metric!r}")
    low, high = (config.data.scale_range + [0.0, 0.0])[:2]
    if len(config.data.scale_range) != 2 or not 0 < low <= high:
        raise ConfigError(f"data.scale_range must be [low, high] with 0 < low <= high, got {config.data.scale_range}")
