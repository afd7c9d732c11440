"""Installs tfp_glow: flow-based generative models (NICE, RealNVP, Glow) for TFP."""
from setuptools import find_packages, setup

setup(
    name="tfp_glow",
    version="0.1.0",
    description="NICE, RealNVP and Glow as TensorFlow Probability bijectors, trainable with Keras 3.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfp_glow", "tfp_glow.*"]),
    python_requires=">=3.10,<3.13",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        # TFP 0.25 refuses to import without tf-keras; the [tf] extra brings it.
        "tensorflow-probability[tf]>=0.25,<0.26",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9,<5",
        "importlib_resources",  # tfds.load imports it but does not declare it
        "numpy>=1.26,<3",
        "scikit-learn>=1.3",  # the offline 8x8 digits
        "matplotlib>=3.7",
        "pillow>=10",
        "tensorboard>=2.21,<2.22",  # Keras' TensorBoard callback (the CLI's logs/)
    ],
    extras_require={"test": ["pytest>=8"], "bench": ["torch", "normflows"]},
    entry_points={"console_scripts": ["tfp-glow=tfp_glow.cli:main"]},
)
