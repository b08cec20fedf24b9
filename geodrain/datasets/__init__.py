"""Chip datasets: VOC chip folders, scenes with truth, on-the-fly crops, window targets."""
