"""The one import of TensorFlow and Mesh-TensorFlow for the whole project.

mesh-tensorflow 0.1.21 calls `ops.register_tensor_conversion_function`, which TF 2.13+
moved to `tensor_conversion_registry`; its `__init__` imports the SIMD (TPU) mesh, which
calls it at import time, so `import mesh_tensorflow` fails without this re-export.
Every module does `from mtf_compat import mtf, tf` so the shim always runs first.
"""
import os
import sys

if sys.version_info[:2] not in ((3, 9), (3, 10), (3, 11)):
  sys.exit("mtfzoo needs Python 3.9-3.11 (TensorFlow 2.15 has no wheels for %d.%d)"
           % sys.version_info[:2])

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tensorflow.python.framework import ops as _tf_ops  # noqa: E402
from tensorflow.python.framework import tensor_conversion_registry  # noqa: E402

if not hasattr(_tf_ops, "register_tensor_conversion_function"):
  _tf_ops.register_tensor_conversion_function = (
      tensor_conversion_registry.register_tensor_conversion_function)

import tensorflow.compat.v1 as tf  # noqa: E402
import mesh_tensorflow as mtf  # noqa: E402

# Mesh-TF and TPUEstimator are graph-mode libraries.
tf.disable_v2_behavior()

__all__ = ["mtf", "tf"]
