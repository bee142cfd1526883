"""Scoring detections (pycocotools COCO metrics, VOC AP) and showing them (drawn boxes, curves, plots)."""
