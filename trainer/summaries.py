"""TensorBoard summaries through TPUEstimator's host_call, the one path that works on
TPU (tensors leave the device through the outfeed) and on CPU alike."""
import math

from mtf_compat import tf

# "loss" is the optimised total; "bpc" is written from "cross_entropy" alone and the
# z-term has its own scalar ("z_loss").
SUMMARIZED = ("loss", "cross_entropy", "z_loss", "grad_norm", "learning_rate",
              "skipped_steps")


def host_call(model_dir, global_step, tensors):
  names = [n for n in SUMMARIZED if n in tensors]
  # host_call arguments need a leading (batch-like) dimension.
  args = [tf.reshape(global_step, [1])] + [
      tf.reshape(tf.cast(tensors[n], tf.float32), [1]) for n in names]

  def write(step, *values):
    step = step[0]
    with tf.compat.v2.summary.create_file_writer(model_dir).as_default():
      with tf.compat.v2.summary.record_if(True):
        for name, value in zip(names, values):
          tf.compat.v2.summary.scalar(name, value[0], step=step)
          if name == "cross_entropy":
            tf.compat.v2.summary.scalar("bpc", value[0] / math.log(2.0), step=step)
        return tf.summary.all_v2_summary_ops()

  return write, args
