"""A trained model leaving the training machine: export (SavedModel, TFLite, ONNX), the detectors that run each
format, test-time augmentation, the original checkpoints' conversion, and the benchmark of every format."""
