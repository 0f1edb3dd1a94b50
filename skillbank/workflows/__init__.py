"""Workflows that chain the layers below into one call: the fine-tuning experiment, the demo."""
