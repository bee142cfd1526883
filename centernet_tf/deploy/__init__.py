"""A trained model leaving the training machine: export (SavedModel, TFLite, ONNX, bfloat16), the detectors that
run each format, test-time augmentation, drawing detections, and the original checkpoints' conversion."""
