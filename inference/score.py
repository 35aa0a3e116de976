"""mtfzoo score: log2-probability of every byte of a text after the first."""
import numpy as np

from inference.predict import predict
from trainer.errors import UserError


def score_windows(text_bytes, length):
  """Overlapping windows covering every byte after the first.

  Returns (inputs, targets, first, count) arrays: window w predicts text bytes
  starts[w]+1 .. starts[w]+length; only `count[w]` predictions from index `first[w]`
  are new, so each byte is scored once, with at least length/2 bytes of context after
  the first window.
  """
  n = len(text_bytes)
  data = np.frombuffer(text_bytes, np.uint8).astype(np.int32)
  stride = max(1, length // 2)
  inputs, targets, first, count = [], [], [], []
  scored = 1  # bytes [0, scored) are done; byte 0 has no context and is not scored
  start = 0
  while scored < n:
    window = np.zeros([length + 1], np.int32)
    chunk = data[start:start + length + 1]
    window[:len(chunk)] = chunk
    inputs.append(window[:-1])
    targets.append(window[1:])
    first.append(scored - start - 1)
    count.append(min(n, start + length + 1) - scored)
    scored = min(n, start + length + 1)
    start += stride
  return (np.array(inputs), np.array(targets), np.array(first), np.array(count))


def score(settings, model_dir, text, tpu_flags=None):
  """{"bytes": n, "log2_probs": [n-1 floats], "bpc": mean of -log2_probs}."""
  text_bytes = text.encode("utf-8") if isinstance(text, str) else text
  if len(text_bytes) < 2:
    raise UserError("--text needs at least two bytes to score (got %d)"
                    % len(text_bytes))
  inputs, targets, first, count = score_windows(text_bytes, settings.sequence_length)
  results = predict(settings, model_dir, {"inputs": inputs, "targets": targets}, {},
                    tpu_flags=tpu_flags)
  log2_probs = []
  for r, f, c in zip(results, first, count):
    log2_probs.extend(float(x) for x in r["log2_probs"][f:f + c])
  return {"bytes": len(text_bytes), "log2_probs": log2_probs,
          "bpc": -float(np.mean(log2_probs))}
