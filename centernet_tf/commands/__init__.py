"""The command-line programs: ``centernet-train``, ``centernet-evaluate``, ``centernet-export``,
``centernet-predict`` (console entry points installed by pip) and the repository's ``train.py``,
``evaluate.py``, ``export.py``, ``predict.py``, which run the same ``main``."""

from __future__ import annotations

from typing import Any

from centernet_tf.model.decode import CenterNetDecoder, decoder_settings


def decoder_for_command(model: Any, config: Any, overrides: list[str] | tuple[str, ...] = ()) -> CenterNetDecoder:
    """What ``evaluate`` and ``export`` decode with: the settings saved in the model (a converted 0.1 model
    saved none: the config's), with the decoder settings given as ``--set eval.*`` on top."""
    from centernet_tf.model.centernet import decoder_for

    from_config = decoder_settings(config.eval)
    explicit = {text.split("=", 1)[0].strip().removeprefix("eval.") for text in overrides
                if text.strip().startswith("eval.")}
    saved = getattr(model, "saved_decoder_settings", None) or from_config
    return decoder_for(model, {**saved, **{k: v for k, v in from_config.items() if k in explicit}})
