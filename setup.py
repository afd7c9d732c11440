"""Installs tfp_glow: flow-based generative models (NICE, RealNVP, Glow) for TFP."""
from setuptools import find_packages, setup

_USER_EXTRAS = {
    # TensorFlow Datasets names (mnist, cifar10, tfds:NAME); tfds.load imports importlib_resources
    # but does not declare it.
    "tfds": ["tensorflow-datasets>=4.9,<5", "importlib_resources"],
    "plots": ["matplotlib>=3.7"],  # density figures and training curves (sample grids need none)
    "photos": ["scikit-learn>=1.3", "pillow>=10"],  # photos32: scikit-learn's two sample photographs
    "tensorboard": ["tensorboard>=2.21,<2.22"],  # Keras' TensorBoard callback (the CLI's logs/)
}
EXTRAS = {
    **_USER_EXTRAS,
    # Everything a user may want; the README's first command. Not the PyTorch baseline.
    "all": sorted({req for reqs in _USER_EXTRAS.values() for req in reqs}),
    # What the test suite imports: every user extra (the tests cover them) and the references it
    # compares against (scipy comes with scikit-learn; scikit-learn's digits check ours).
    "test": sorted({req for reqs in _USER_EXTRAS.values() for req in reqs} | {"pytest>=8"}),
    # tfp-glow bench --quality / --peer torch: PyTorch normflows as the baseline; no test needs it.
    "bench": ["torch", "normflows"],
}

setup(
    name="tfp_glow",
    version="0.1.0",
    description="NICE, RealNVP and Glow as TensorFlow Probability bijectors, trainable with Keras 3.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfp_glow", "tfp_glow.*"]),
    # The 8x8 digits (UCI, CC BY 4.0) and their credits ship inside the package.
    package_data={"tfp_glow.data": ["files/digits.npz", "files/README.md"]},
    include_package_data=True,
    python_requires=">=3.10,<3.13",
    # The core: enough to build, train, sample, evaluate and export flows on the offline digits,
    # .npz files and image folders. Everything else is an extra (tfp_glow/extras.py): a missing
    # one raises MissingExtraError naming it.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        # TFP 0.25 refuses to import without tf-keras; the [tf] extra brings it.
        "tensorflow-probability[tf]>=0.25,<0.26",
        "keras>=3.10,<4",
        "numpy>=1.26,<3",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["tfp-glow=tfp_glow.cli:main"]},
)
