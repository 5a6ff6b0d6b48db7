"""Jobs run by `underrep_jax.main`: one module per job, each with `run(config, workdir)`."""
