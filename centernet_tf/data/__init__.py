"""Dataset sources (COCO, Pascal VOC, synthetic shapes) and the tf.data pipeline."""
