"""The network and what it is trained and decoded with: backbones (features by stride) -> neck -> heads, the
deformable layer, the loss and its targets, and the decoder that turns the heads into boxes.

``from centernet_tf.model import build_centernet`` keeps working: the model's own module is ``centernet``.
"""

from centernet_tf.model.centernet import CenterNet, build_centernet, decoder_for, load_centernet

__all__ = ["CenterNet", "build_centernet", "decoder_for", "load_centernet"]
