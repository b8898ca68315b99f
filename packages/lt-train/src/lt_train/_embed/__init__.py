"""Embed: image files or shards through a trained model, into CSV, torch or Parquet."""

from lt_train._embed._embed import EmbedConfig, embed

__all__ = ["EmbedConfig", "embed"]
