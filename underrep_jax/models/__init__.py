"""The Flax model zoo: decoder-only (BLOOM, Llama/Mistral/Qwen2, XGLM), encoder-decoder
(T5 v1.1 / mT5 / mT0) and encoders (BERT, MiniLM, RoBERTa, XLM-R), with HF import/export
in `underrep_jax.models.hf`. See README.md in this directory.
"""

from underrep_jax.models.initialize import example_inputs
from underrep_jax.models.initialize import init_cache
from underrep_jax.models.initialize import init_params
from underrep_jax.models.initialize import make_init_fn
from underrep_jax.models.initialize import param_shardings
from underrep_jax.models.registry import FAMILIES
from underrep_jax.models.registry import build
from underrep_jax.models.registry import get_family

__all__ = ["FAMILIES", "build", "example_inputs", "get_family", "init_cache", "init_params",
           "make_init_fn", "param_shardings"]
