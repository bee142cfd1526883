"""Decoding: exact boxes from hand-made maps, NMS, letterbox removal, and encode -> decode round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from centernet_tf.data.letterbox import letterbox_boxes, letterbox_image
from centernet_tf.model.decode import CenterNetDecoder
from centernet_tf.model.targets import encode_targets


def _maps(height=16, width=24, classes=2):
    heatmap = np.zeros((1, height, width, classes), np.float32)
    wh = np.zeros((1, height, width, 2), np.float32)
    offset = np.zeros((1, height, width, 2), np.float32)
    return heatmap, wh, offset


def test_peaks_topk_and_boxes_are_exact() -> None:
    heatmap, wh, offset = _maps()
    heatmap[0, 5, 7, 1] = 0.9
    heatmap[0, 5, 8, 1] = 0.5  # neighbour of a higher peak: suppressed by the 3x3 max-pool
    heatmap[0, 10, 3, 0] = 0.6
    heatmap[0, 14, 20, 0] = 0.05  # below the threshold
    wh[0, 5, 7] = [8, 4]
    offset[0, 5, 7] = [0.25, 0.5]
    wh[0, 10, 3] = [2, 6]
    out = CenterNetDecoder(max_detections=10, score_threshold=0.1)({"heatmap": heatmap, "wh": wh, "offset": offset})
    assert out["boxes"].shape == (1, 10, 4) and out["scores"].shape == (1, 10)
    assert int(out["num_detections"][0]) == 2
    np.testing.assert_allclose(out["scores"][0, :3], [0.9, 0.6, 0.0])
    assert out["classes"].numpy()[0, :3].tolist() == [1, 0, -1]
    # Centre (7.25, 5.5) * 4 = (29, 22); size (8, 4) * 4 = (32, 16).
    np.testing.assert_allclose(out["boxes"][0, 0], [13, 14, 45, 30], atol=1e-5)
    np.testing.assert_allclose(out["boxes"][0, 1], [8, 28, 16, 52], atol=1e-5)


def test_negative_sizes_give_empty_boxes_at_the_centre_not_inverted_ones() -> None:
    heatmap, wh, offset = _maps()
    heatmap[0, 5, 7, 0] = 0.9
    wh[0, 5, 7] = [-8, 4]  # what an untrained wh head can output
    out = CenterNetDecoder(max_detections=3, score_threshold=0.1)({"heatmap": heatmap, "wh": wh, "offset": offset})
    # Centre (7, 5) * 4 = (28, 20): width clamped to 0, height 4 * 4 = 16.
    np.testing.assert_allclose(out["boxes"][0, 0], [28, 12, 28, 28], atol=1e-5)


def test_letterbox_is_undone_and_boxes_clipped_to_the_image() -> None:
    heatmap, wh, offset = _maps()
    heatmap[0, 5, 7, 1] = 0.9
    wh[0, 5, 7] = [8, 4]
    offset[0, 5, 7] = [0.25, 0.5]
    heatmap[0, 1, 1, 0] = 0.8
    wh[0, 1, 1] = [10, 10]
    inputs = {
        "heatmap": heatmap, "wh": wh, "offset": offset,
        "letterbox": np.array([[0.5, 0.0, 8.0]], np.float32),  # scale 0.5, padded 8 px at the top
        "image_size": np.array([[100, 192]], np.int32),
    }
    out = CenterNetDecoder(max_detections=5, score_threshold=0.1)(inputs)
    np.testing.assert_allclose(out["boxes"][0, 0], [26, 12, 90, 44], atol=1e-4)
    # Second box: centre (4, 4), size 40 -> (-16, -16, 24, 24) in input pixels -> (-32, -48, 48, 32) -> clipped.
    np.testing.assert_allclose(out["boxes"][0, 1], [0, 0, 48, 32], atol=1e-4)


def test_class_wise_nms_removes_same_class_duplicates_only() -> None:
    heatmap, wh, offset = _maps()
    for x, cls, score in ((6, 0, 0.9), (8, 0, 0.8), (10, 1, 0.7)):
        heatmap[0, 8, x, cls] = score
        wh[0, 8, x] = [12, 12]
    maps = {"heatmap": heatmap, "wh": wh, "offset": offset}
    plain = CenterNetDecoder(max_detections=6, score_threshold=0.1)(maps)
    nms = CenterNetDecoder(max_detections=6, score_threshold=0.1, nms=True, nms_iou_threshold=0.5)(maps)
    assert int(plain["num_detections"][0]) == 3
    assert int(nms["num_detections"][0]) == 2
    np.testing.assert_allclose(nms["scores"][0, :2], [0.9, 0.7])
    assert nms["classes"].numpy()[0].tolist() == [0, 1, -1, -1, -1, -1]
    np.testing.assert_allclose(nms["boxes"][0, 0], plain["boxes"][0, 0], atol=1e-5)


def test_decoder_serializes() -> None:
    decoder = CenterNetDecoder(max_detections=7, score_threshold=0.2, nms=True, nms_iou_threshold=0.4)
    restored = keras.layers.deserialize(keras.layers.serialize(decoder))
    assert isinstance(restored, CenterNetDecoder)
    assert restored.get_config() == decoder.get_config()


@pytest.mark.parametrize("image_hw,input_hw", [((480, 640), (128, 128)), ((300, 200), (96, 160))])
def test_encode_then_decode_recovers_original_boxes(image_hw, input_hw) -> None:
    """Perfect maps built from the targets decode back to the original-image boxes (letterbox included)."""
    rng = np.random.default_rng(1)
    h, w = image_hw
    x1 = rng.uniform(0, w * 0.6, 5)
    y1 = rng.uniform(0, h * 0.6, 5)
    boxes = np.stack([x1, y1, x1 + rng.uniform(30, w * 0.4, 5), y1 + rng.uniform(30, h * 0.4, 5)], 1)
    boxes = boxes.astype(np.float32)
    classes = np.array([0, 1, 2, 0, 1], np.int32)
    _, letterbox = letterbox_image(tf.zeros((h, w, 3), tf.uint8), input_hw)
    t = encode_targets(letterbox_boxes(boxes, letterbox), classes, input_hw, num_classes=3)
    map_h, map_w = input_hw[0] // 4, input_hw[1] // 4
    wh = np.zeros((map_h * map_w, 2), np.float32)
    offset = np.zeros((map_h * map_w, 2), np.float32)
    n = int(t["num_objects"])
    wh[t["indices"][:n]] = t["wh"][:n]
    offset[t["indices"][:n]] = t["offset"][:n]
    out = CenterNetDecoder(max_detections=20, score_threshold=0.99)(
        {
            "heatmap": t["heatmap"][None],
            "wh": wh.reshape(1, map_h, map_w, 2),
            "offset": offset.reshape(1, map_h, map_w, 2),
            "letterbox": letterbox[None],
            "image_size": np.array([[h, w]]),
        }
    )
    assert int(out["num_detections"][0]) == 5
    decoded = {int(c): b for c, b in zip(out["classes"][0, :5].numpy(), out["boxes"][0, :5].numpy())}
    order = np.argsort([b[0] for b in out["boxes"][0, :5].numpy()])
    got = out["boxes"][0, :5].numpy()[order]
    want = boxes[np.argsort(boxes[:, 0])]
    np.testing.assert_allclose(got, want, atol=1e-3 * max(h, w))
    assert set(decoded) == {0, 1, 2}


def test_class_wise_nms_equals_tensorflows_combined_nms_on_random_maps() -> None:
    """The builtin-op NMS (one NMS V4 per image over class-separated boxes) keeps what
    tf.image.combined_non_max_suppression keeps, image by image, for a batch and for one image."""
    rng = np.random.default_rng(0)
    maps = {
        "heatmap": tf.constant(rng.uniform(0, 1, (3, 12, 16, 4)).astype(np.float32)),
        "wh": tf.constant(rng.uniform(1, 6, (3, 12, 16, 2)).astype(np.float32)),
        "offset": tf.constant(rng.uniform(0, 1, (3, 12, 16, 2)).astype(np.float32)),
    }
    plain = CenterNetDecoder(max_detections=40, score_threshold=0.0)(maps)
    decoder = CenterNetDecoder(max_detections=40, score_threshold=0.3, nms=True, nms_iou_threshold=0.3)
    got = decoder(maps)
    for image in range(3):
        boxes, scores, classes = plain["boxes"][image], plain["scores"][image], plain["classes"][image]
        ref = tf.image.combined_non_max_suppression(
            tf.gather(boxes, [1, 0, 3, 2], axis=-1)[None, :, None, :],
            (tf.one_hot(classes, 4) * scores[:, None])[None], 40, 40, 0.3, 0.3, clip_boxes=False,
        )
        count = int(ref.valid_detections[0])
        assert int(got["num_detections"][image]) == count and count > 3
        np.testing.assert_allclose(got["scores"][image, :count], ref.nmsed_scores[0, :count], atol=1e-6)
        np.testing.assert_array_equal(got["classes"][image, :count], ref.nmsed_classes[0, :count])
        single = decoder({k: v[image:image + 1] for k, v in maps.items()})  # the exported graphs' path
        np.testing.assert_allclose(single["boxes"][0], got["boxes"][image], atol=1e-5)


def _two_overlapping_classes() -> dict[str, tf.Tensor]:
    """Two peaks of different classes whose boxes overlap (IoU 0.6), and a far one."""
    heatmap = np.zeros((1, 16, 16, 2), np.float32)
    heatmap[0, 5, 5, 0], heatmap[0, 5, 6, 1], heatmap[0, 12, 12, 0] = 0.9, 0.8, 0.7
    wh = np.full((1, 16, 16, 2), 4.0, np.float32)
    return {"heatmap": tf.constant(heatmap), "wh": tf.constant(wh), "offset": tf.zeros((1, 16, 16, 2))}


def test_class_agnostic_nms_removes_overlaps_across_classes() -> None:
    maps = _two_overlapping_classes()
    per_class = CenterNetDecoder(max_detections=5, score_threshold=0.1, nms=True, nms_iou_threshold=0.5)(maps)
    agnostic = CenterNetDecoder(max_detections=5, score_threshold=0.1, nms=True, nms_iou_threshold=0.5,
                                nms_class_agnostic=True)(maps)
    assert int(per_class["num_detections"][0]) == 3
    assert int(agnostic["num_detections"][0]) == 2
    np.testing.assert_allclose(agnostic["scores"][0, :2], [0.9, 0.7])


def test_soft_nms_lowers_overlapping_scores_by_the_gaussian_weight() -> None:
    maps = _two_overlapping_classes()
    decoder = CenterNetDecoder(max_detections=5, score_threshold=0.1, nms=True, nms_method="soft",
                               soft_nms_sigma=0.5, nms_class_agnostic=True)
    found = decoder(maps)
    iou = 192 / 320  # 16x16 px boxes 4 px apart: 12x16 overlap
    assert int(found["num_detections"][0]) == 3
    np.testing.assert_allclose(sorted(found["scores"].numpy()[0, :3], reverse=True),
                               sorted([0.9, 0.7, 0.8 * np.exp(-iou**2 / 0.5)], reverse=True), rtol=1e-5)
    with pytest.raises(ValueError, match="nms_method must be one of hard, soft"):
        CenterNetDecoder(nms_method="linear")


def test_the_eval_section_holds_exactly_the_decoders_settings() -> None:
    """The decoder states its settings once: the config's eval section has those keys (plus how to run the
    evaluation), a config value the decoder refuses is a config error naming the eval key."""
    import dataclasses

    from centernet_tf.config import ConfigError, EvalConfig, load_config
    from centernet_tf.model.decode import DECODER_SETTINGS, decoder_settings

    fields = [f.name for f in dataclasses.fields(EvalConfig)]
    assert {f for f in fields if f in DECODER_SETTINGS} == set(DECODER_SETTINGS)
    assert [f for f in fields if f not in DECODER_SETTINGS] == ["batch_size", "every_n_epochs", "best_metric"]
    config = load_config(None, ["eval.nms=true", "eval.soft_nms_sigma=0.3"])
    decoder = CenterNetDecoder(**decoder_settings(config.eval))
    assert decoder.nms and decoder.soft_nms_sigma == 0.3
    with pytest.raises(ConfigError, match="eval.scale_merge must be one of soft_nms, nms, got 'mean'"):
        load_config(None, ["eval.scale_merge=mean"])


def test_a_model_saved_with_fewer_decoder_settings_loads_with_the_defaults_for_the_rest(tmp_path) -> None:
    """Files written before a setting existed hold a shorter decoder dict: it still loads, and the decoder and
    the CLIs' overrides work on top of it."""
    from centernet_tf.model.decode import decoder_settings
    from centernet_tf.model.centernet import CenterNet, build_centernet, decoder_for

    model = build_centernet(2, "resnet10_slim", (64, 64, 3), decoder={"nms": True, "score_threshold": 0.2})
    config = model.get_config()
    assert config["decoder"]["soft_nms_sigma"] == 0.5 and config["decoder"]["nms"] is True
    config["decoder"] = {"nms": True, "score_threshold": 0.2}  # as an older release saved it
    old = CenterNet.from_config(config)
    assert decoder_settings(old.decoder) == decoder_settings(model.decoder) and old.decoder.stride == 4
    tuned = decoder_for(old, {"max_detections": 7})
    assert (tuned.max_detections, tuned.nms, tuned.score_threshold) == (7, True, 0.2)
    with pytest.raises(ValueError, match="max_detection"):
        decoder_for(old, {"max_detection": 7})  # a misspelt setting is an error, not ignored
