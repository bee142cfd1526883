"""The range of every number in the config, in one table that :func:`centernet_tf.config.validate` applies."""

from __future__ import annotations

from centernet_tf.intervals import AT_LEAST_0, AT_LEAST_1, POSITIVE, PROBABILITY_OPEN, UNIT, Interval

#: The range of every number in the config (each item of a list; null stays allowed where the type allows it).
#: A setting outside it would make a run useless (no detections, a hang, a division by zero) or crash late.
NUMBER_RANGES: dict[str, Interval] = {
    "model.head_conv": AT_LEAST_1, "model.box_features_stride": Interval(8),
    "data.shapes_num_train": AT_LEAST_1, "data.shapes_num_val": AT_LEAST_1, "data.shapes_image_size": Interval(8),
    "data.shapes_seed": AT_LEAST_0, "data.max_objects": AT_LEAST_1, "data.max_image_pixels": AT_LEAST_1,
    "data.check_workers": AT_LEAST_1, "data.scale_range": POSITIVE, "data.crop_border": Interval(0, 0.5, True, False),
    "data.colour_jitter": UNIT, "data.lighting_std": AT_LEAST_0,
    "data.mosaic": UNIT,
    "loss.heatmap_weight": AT_LEAST_0, "loss.wh_weight": AT_LEAST_0, "loss.offset_weight": AT_LEAST_0,
    "loss.focal_alpha": AT_LEAST_0, "loss.focal_beta": AT_LEAST_0,
    "train.epochs": AT_LEAST_1, "train.time_budget_minutes": POSITIVE, "train.batch_size": AT_LEAST_1,
    "train.learning_rate": POSITIVE, "train.base_learning_rate": POSITIVE, "train.warmup_steps": AT_LEAST_0,
    "train.lr_decay_epochs": AT_LEAST_1, "train.lr_decay_factor": Interval(0, 1, False, True),
    "train.freeze_backbone_epochs": AT_LEAST_0, "train.fine_tune_learning_rate": POSITIVE,
    "train.fine_tune_frozen_stride": AT_LEAST_0,
    "train.ema_momentum": PROBABILITY_OPEN, "train.ema_batch_norm_batches": AT_LEAST_0,
    "train.gradient_clip_norm": POSITIVE, "train.steps_per_epoch": AT_LEAST_1,
    "train.seed": Interval(0, 2**32 - 1),
    "eval.max_detections": AT_LEAST_1, "eval.score_threshold": Interval(0, 1, True, False),
    "eval.nms_iou_threshold": Interval(0, 1, False, True), "eval.test_scales": POSITIVE,
    "eval.soft_nms_sigma": POSITIVE, "eval.batch_size": AT_LEAST_1, "eval.every_n_epochs": AT_LEAST_0,
}
