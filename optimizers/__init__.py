"""Optimizers (SM3, Adam), gradient clipping and learning-rate schedules."""
from optimizers.adam import Adam
from optimizers.base import optimizer_state_bytes
from optimizers.clipping import (GradientClipping, adaptive_clip, clip_by_global_norm,
                                 global_norm)
from optimizers.schedules import learning_rate_schedule
from optimizers.sm3 import SM3

__all__ = ["Adam", "SM3", "GradientClipping", "adaptive_clip", "clip_by_global_norm",
           "global_norm", "learning_rate_schedule", "optimizer_state_bytes"]
