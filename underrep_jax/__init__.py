"""underrep_jax: bringing underrepresented languages into large language models, in JAX."""

__version__ = "0.1.0"
