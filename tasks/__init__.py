"""SeqIO registrations of underrep_jax. Importing this package registers everything.

  import tasks   # registers evaluation tasks, InstructAlign tasks and mixtures
  seqio.get_mixture_or_task("instructalign_pair_xss_flores_eng")

To register a mixture of your own, see the README ("Registering your own mixtures"):
`tasks.instructalign.alignment_mixture(...)`, `tasks.replay.with_replay(...)` or plain
`seqio.MixtureRegistry.add(...)` over the registered task names.
"""

from tasks import evaluation
from tasks import instructalign
from tasks import registry
from tasks import replay

evaluation.register_all()
instructalign.register_all()

__all__ = ["evaluation", "instructalign", "registry", "replay"]
