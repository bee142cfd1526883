"""predict.py and export.py as a user runs them: their detections match the evaluation path and the Keras
model; unreadable files are skipped and counted; a video gives one entry per frame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from centernet_tf.data.formats import load_voc
from centernet_tf.data.index import DatasetIndex
from centernet_tf.deploy.inference import KerasDetector
from centernet_tf.evaluation.metrics import predict_detections
from tests.test_export import CLASSES, ENV, INPUT, REPO, _image, peaked_model


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return peaked_model()


def _bccd_one_image(root: Path) -> DatasetIndex:
    test = load_voc(root, "test", class_names=CLASSES)
    return DatasetIndex(test.examples[:1], test.class_names, test.report)


def test_export_and_predict_clis_match_the_evaluation_path(model: keras.Model, tmp_path: Path, bccd_root: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    env = {**ENV, "PYTHONPATH": str(REPO)}

    export = subprocess.run([sys.executable, str(REPO / "export.py"), "--model", str(run / "model.keras"),
                             "--format", "saved_model"], env=env, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-3000:]
    assert (run / "model_saved_model" / "saved_model.pb").exists()
    refused = subprocess.run([sys.executable, str(REPO / "export.py"), "--model", str(run / "model.keras"),
                              "--format", "tflite", "--quantize", "int8"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and "config" in refused.stderr

    index = _bccd_one_image(bccd_root)
    example = index.examples[0]
    expected = predict_detections(model, index)  # the evaluation path: tf.data letterbox, batched decode
    for source in (run / "model.keras", run / "model_saved_model"):
        out = tmp_path / f"pred_{source.name}"
        done = subprocess.run([sys.executable, str(REPO / "predict.py"), "--model", str(source), "--input",
                               example.image_path, "--output", str(out), "--score-threshold", "0"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        rows = json.loads((out / "detections.json").read_text())["images"][Path(example.image_path).name]
        assert len(rows) == len(expected)
        for row, coco in zip(rows, expected):
            x, y, w, h = coco["bbox"]
            np.testing.assert_allclose(row["box"], [x, y, x + w, y + h], atol=0.01)
            assert row["score"] == pytest.approx(coco["score"], abs=1e-5)
            assert row["class_name"] == CLASSES[coco["category_id"] - 1]
        drawn = np.asarray(Image.open(out / f"{Path(example.image_path).stem}.jpg"))
        assert drawn.shape == (example.height, example.width, 3)
        assert np.abs(drawn.astype(int) - np.asarray(Image.open(example.image_path)).astype(int)).max() > 100


def test_predict_on_a_directory_skips_unreadable_files_and_on_a_video(model: keras.Model, tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    model.save(tmp_path / "model.keras")
    images = tmp_path / "images"
    images.mkdir()
    frames = [_image(seed, (96, 128)) for seed in range(3)]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(images / f"frame{i}.png")
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    env = {**ENV, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "predict.py"), "--model", str(tmp_path / "model.keras"),
                           "--input", str(images), "--output", str(tmp_path / "out"), "--score-threshold", "0.05"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert sorted(result["images"]) == ["frame0.png", "frame1.png", "frame2.png"]
    assert result["skipped"] == [str(images / "broken.jpg")]
    assert "Skipped 1 unreadable files of 4" in done.stderr
    detector = KerasDetector(model)
    expected = detector.detect(frames[0]).above(0.05)
    assert len(result["images"]["frame0.png"]) == len(expected.scores) > 0

    # A lossless video of the same frames: one JSON entry per frame, same detections as the stills.
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 5.0, (128, 96))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    done = subprocess.run([sys.executable, str(REPO / "predict.py"), "--model", str(tmp_path / "model.keras"),
                           "--input", str(video), "--output", str(tmp_path / "video_out"), "--score-threshold", "0.05"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "video_out" / "detections.json").read_text())
    assert len(result["frames"]) == 3
    # No labels.txt beside this model: rows carry class ids only.
    assert result["frames"][0] == json.loads(json.dumps(expected.to_list()))
    written = cv2.VideoCapture(str(tmp_path / "video_out" / "clip.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_predict_on_images_of_the_same_stem_writes_one_picture_each(model: keras.Model, tmp_path: Path) -> None:
    model.save(tmp_path / "model.keras")
    (tmp_path / "in").mkdir()
    Image.fromarray(_image(1)).save(tmp_path / "in" / "a.jpg")
    Image.fromarray(_image(2)).save(tmp_path / "in" / "a.png")
    Image.fromarray(_image(3)).save(tmp_path / "in" / "b.png")
    done = subprocess.run(
        [sys.executable, str(REPO / "predict.py"), "--model", str(tmp_path / "model.keras"), "--input",
         str(tmp_path / "in"), "--output", str(tmp_path / "out")],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["a_jpg.jpg", "a_png.jpg", "b.jpg"]
    heatmaps = subprocess.run(
        [sys.executable, str(REPO / "predict.py"), "--model", str(tmp_path / "model.keras"), "--input",
         str(tmp_path / "in" / "b.png"), "--output", str(tmp_path / "hm"), "--heatmap"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert heatmaps.returncode == 0, heatmaps.stderr[-2000:]
    overlay = np.asarray(Image.open(tmp_path / "hm" / "b_heatmap.jpg"))
    assert overlay.shape == (*INPUT, 3) and overlay[..., 0].mean() > overlay[..., 1].mean()  # red: the heatmap
    assert sorted(json.loads((tmp_path / "out" / "detections.json").read_text())["images"]) == ["a.jpg", "a.png", "b.png"]
