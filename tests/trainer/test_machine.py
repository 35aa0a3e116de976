"""The machine record of run.json and bench: the CPU model and the widest vector ISA read
from /proc/cpuinfo text, on the x86 and ARM layouts of that file."""
import pytest

from trainer import machine

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512_vnni
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512_vnni
"""
# Alder Lake: AVX-VNNI without AVX-512; a substring match on "avx5"/"vnni" would be wrong.
ALDER_LAKE = """model name\t: 12th Gen Intel(R) Core(TM) i7-1260P
flags\t\t: fpu sse4_2 avx avx2 avx_vnni
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve
CPU implementer\t: 0x41
"""


@pytest.mark.parametrize("text, model, isa", [
    (EPYC, "AMD EPYC 7B13", "AVX-512"),
    (ALDER_LAKE, "12th Gen Intel(R) Core(TM) i7-1260P", "AVX2"),
    (GRAVITON, None, "SVE"),
    ("", None, None),
])
def test_cpu_model_and_widest_vector_isa_from_cpuinfo(text, model, isa):
  assert machine.vector_isa(text) == isa
  if model is not None:
    assert machine.cpu_model(text) == model
  else:  # no "model name" line: whatever the platform module names, never empty
    assert machine.cpu_model(text)


def test_a_flag_only_counts_as_a_whole_word():
  assert machine.vector_isa("flags\t: avx512_vnni avx2_like\n") is None
