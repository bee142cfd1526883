"""The command-line programs: ``centernet-train``, ``centernet-evaluate``, ``centernet-export``,
``centernet-predict`` (console entry points installed by pip) and the repository's ``train.py``,
``evaluate.py``, ``export.py``, ``predict.py``, which run the same ``main``."""
