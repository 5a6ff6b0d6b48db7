"""Plan a run before renting the machine: does the job fit, at which batch, what it costs.

    python -m underrep_jax.plan --config=configs/instructalign.py:bloomz-560m --target=v5e-8 \
        [--config.model.path=DIR_WITH_CONFIG_JSON] [--config.x=y ...]
    python -m underrep_jax.plan --config=configs/experiments/instructalign_paper.py \
        --config.only=pair_xss_r100k --target=v5e-8   # one training stage of an experiment
    python -m underrep_jax.plan --config=configs/univar.py:paper --target=v5e-8 \
        --config.views.max_qas=1   # all-MiniLM-L6-v2 (512 positions): λ=1, 256 tokens
    python -m underrep_jax.plan --config=configs/evaluate.py:paper --target=v5e-8 \
        --config.model.path=DIR --config.mesh.shape='(1,-1,1)'   # the evaluation's steps

The job's exact train step (its `train_spec`, `jobs.instruct.train_spec` or
`jobs.univar.train_spec`, + `train.program.build`: what `train_on_mixture` and UniVaR's
`run` hand the training loop) is built from the config with abstract shapes only (no
parameter memory; a checkpoint's config.json is all that is read, a Hub id fetches only
that file; UniVaR with an empty model.path plans all-MiniLM-L6-v2) and compiled ahead of
time for the target from this host:

- TPU slices (v5e-8, v4-8, v4-32, v5p-128, v6e-8) through libtpu's compile-only
  topology (`pip install -e ".[tpu]"`); the compiler's own out-of-memory check is the
  does-not-fit verdict.
- NVIDIA nodes (h100x8, a100x8, h200x8) through the CUDA plugin's deviceless compiler
  (`pip install -e ".[cuda]"`: the plugin alone, no CUDA libraries or driver) and a GPU
  target config shipped in `underrep_jax/targets/`. XLA's GPU compiler counts no FLOPs:
  they come from a compile of the same step on as many host CPU devices.

The evaluate job is planned by its two jitted calls, as its Scorer and Generator make
them (`scoring.lower`, `generation.lower`): one scoring batch at `max_prompt_tokens`
with the selected tasks' largest label set (labels planned at PLANNED_LABEL_TOKENS
tokens), and one generation batch of `max_new_tokens` (greedy or beams).

Printed per chip: argument, output, temporary and generated-code memory, the peak against
the chip's HBM; XLA's FLOPs per step against the model's own count
(`flops_per_token` x tokens; UniVaR: two views per pair), corrected where XLA counts a loop body once (a layer scan is
compiled unrolled for the count; a microbatch scan is multiplied by the microbatches).
When the step does not fit, a bounded search (`--search_seconds`, a few compiles)
suggests remat, fsdp over every chip, or the largest per-chip batch that fits.

Exit codes: 0 fits; 3 does not fit (one `verdict:` line, a `suggestion:` line); 2 a bad
command line or config (an unknown target, libtpu missing); 1 other user errors.
"""

import copy
import dataclasses
import importlib.resources
import importlib.util
import os
import re
import sys
import time

from absl import app
from absl import flags

from underrep_jax import errors
from underrep_jax import main as launcher

_TARGET = flags.DEFINE_string("target", None, "What to compile for: one of TARGETS.")
_SEARCH_SECONDS = flags.DEFINE_float(
    "search_seconds", 900.0, "Time for the does-not-fit search (remat, fsdp, batch); it "
    "stops after the compile that passes it. 0: no search.")

EXIT_DOES_NOT_FIT = 3
GIB = 1024**3
PLANNED_JOBS = ("instruct", "instructalign", "univar", "evaluate")
# Label continuations are planned at this many tokens (verbalizers take 1 to 4).
PLANNED_LABEL_TOKENS = 8


@dataclasses.dataclass(frozen=True)
class Target:
  """A machine to plan for: its compile-only topology and each chip's memory."""
  name: str
  platform: str           # "tpu" or "cuda"
  chips: int              # JAX devices (TPU v4/v5p: one megacore device per chip)
  hbm_bytes: int
  topology: str = ""      # libtpu's topology name, e.g. "v5e:2x4"
  chip_config: str = "default"
  host_bounds: tuple[int, int, int] = (2, 2, 1)
  wrap: tuple[bool, bool, bool] = (False, False, False)
  accelerator_type: str = ""  # TPU_ACCELERATOR_TYPE as on a real host of the slice
  target_config: str = ""     # GPUs: the GpuTargetConfigProto in underrep_jax/targets/


# HBM per chip: TPUs as Google gives it, GPUs as their target config's device memory.
TARGETS = {t.name: t for t in (
    Target("v5e-8", "tpu", 8, 16 * GIB, "v5e:2x4", host_bounds=(2, 4, 1),
           accelerator_type="v5litepod-8"),
    Target("v4-8", "tpu", 4, 32 * GIB, "v4:2x2x1", "megacore", accelerator_type="v4-8"),
    Target("v4-32", "tpu", 16, 32 * GIB, "v4:2x2x4", "megacore", accelerator_type="v4-32"),
    Target("v5p-128", "tpu", 64, 95 * GIB, "v5p:4x4x4", "megacore", wrap=(True, True, True),
           accelerator_type="v5p-128"),
    Target("v6e-8", "tpu", 8, 32 * GIB, "v6e:2x4", host_bounds=(2, 4, 1),
           accelerator_type="v6e-8"),
    Target("h100x8", "cuda", 8, 84942979072, target_config="h100_sxm.txtpb"),
    Target("a100x8", "cuda", 8, 85100068864, target_config="a100_sxm_80.txtpb"),
    Target("h200x8", "cuda", 8, 151397597184, target_config="h200.txtpb"),
)}


def target_named(name: str | None) -> Target:
  if name not in TARGETS:
    raise errors.ConfigError(f"--target={name!r}: unknown target; known: "
                             f"{', '.join(TARGETS)}")
  return TARGETS[name]


def choose_platforms(target: Target) -> None:
  """Before jax is imported: the host computes on CPU, whatever is installed.

  libtpu, once installed, is probed by every process that leaves JAX_PLATFORMS unset and
  prints a screen of warnings on a host without TPUs; here it only compiles. Its
  metadata probes are answered from the environment (set unless the user set them).
  """
  os.environ["JAX_PLATFORMS"] = "cpu"
  if target.platform == "cuda":  # the FLOPs compile: one host CPU device per GPU
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={target.chips}")
  if target.platform == "tpu":
    # libtpu's lock on /tmp/libtpu_lockfile guards chips this process never opens.
    for key, value in (("ALLOW_MULTIPLE_LIBTPU_LOAD", "1"),
                       ("TPU_SKIP_MDS_QUERY", "1"), ("TPU_WORKER_ID", "0"),
                       ("TPU_WORKER_HOSTNAMES", "localhost"),
                       ("TPU_ACCELERATOR_TYPE", target.accelerator_type)):
      os.environ.setdefault(key, value)


def installed(module: str) -> bool:
  """Whether `module` can be imported (without importing it)."""
  try:
    return importlib.util.find_spec(module) is not None
  except ModuleNotFoundError:  # its parent package (jax_plugins) is missing
    return False


def target_devices(target: Target) -> list:
  """The target's devices, compile-only; a one-line error when they cannot be made."""
  from jax.experimental import topologies
  if target.platform == "cuda":
    if not installed("jax_plugins.xla_cuda12"):
      raise errors.ConfigError(f"--target={target.name}: GPU targets need jax's CUDA plugin "
                               'at jax\'s version: pip install -e ".[cuda]"')
    spec = importlib.resources.files("underrep_jax") / "targets" / target.target_config
    topology = topologies.get_topology_desc(platform="cuda", target_config=spec.read_text(),
                                            topology=f"1x1x{target.chips}")
    return list(topology.devices)
  if not installed("libtpu"):
    raise errors.ConfigError(f"--target={target.name}: TPU targets need libtpu at jax's "
                             'version: pip install -e ".[tpu]"')
  topology = topologies.get_topology_desc(
      platform="tpu", topology_name=target.topology, chip_config_name=target.chip_config,
      chips_per_host_bounds=target.host_bounds, num_slices=1, wrap=target.wrap)
  return list(topology.devices)


@dataclasses.dataclass
class Attempt:
  """One compile of the step: memory per chip, or why it does not fit."""
  seconds: float
  memory: dict[str, int] | None = None   # per chip, bytes
  flops: float | None = None             # per chip, as XLA counts it (loops once)
  out_of_memory: str = ""                # the compiler's reason, one line

  @property
  def peak(self) -> int:
    m = self.memory
    return m["argument"] + m["output"] - m["alias"] + m["temp"] + m["code"]

  def fits(self, hbm_bytes: int) -> bool:
    return not self.out_of_memory and self.peak <= hbm_bytes


def _with_local_model(config):
  """`config` with a Hub id in model.path replaced by the folder of its config.json,
  fetched alone (no weights); done once, before the compiles that each read it."""
  from underrep_jax.models import hub
  path = config.model.path
  if path and hub.is_hub_id(path):
    from huggingface_hub import hf_hub_download
    try:
      local = hf_hub_download(path, "config.json", revision=config.model.revision or None,
                              cache_dir=hub.cache_dir(), local_files_only=hub.offline())
    except Exception as e:  # pylint: disable=broad-except
      raise errors.ModelError(f"{path}: cannot read the Hub model's config.json "
                              f"({type(e).__name__}); pass --config.model.path=DIR, a "
                              "directory with its config.json") from None
    config = copy.deepcopy(config)
    config.model.path = os.path.dirname(local)
  return config


def _model_source(config):
  """The config's model (imported late: jax must not load before `choose_platforms`)."""
  from underrep_jax.models import runtime
  return runtime.ModelSource.from_config(config.model)


def _mesh(config, devices):
  """The config's mesh over `devices`, ordered for the physical topology."""
  from jax.experimental import mesh_utils
  from jax.sharding import Mesh
  from underrep_jax import parallel
  shape = parallel.resolve_mesh_shape(tuple(config.mesh.shape), len(devices))
  grid = mesh_utils.create_device_mesh(shape, devices=devices, allow_split_physical_axes=True)
  return parallel.Topology.of(Mesh(grid, parallel.MESH_AXES), config.mesh.rules)


def train_spec(config):
  """The job's `train_spec`: what its training hands `train.loop` (module, init, loss,
  FLOPs per token, global batch shapes), with abstract shapes only."""
  if config.get("job") == "univar":  # the encoder: model.path, or all-MiniLM-L6-v2
    from underrep_jax.jobs import univar
    return univar.train_spec(config, univar.model_source(config))
  from underrep_jax.jobs import instruct
  return instruct.train_spec(config, _model_source(config))


def step_tokens(config, spec) -> tuple[int, str]:
  """Tokens one step trains on (what the model's FLOPs per token multiply) and the
  batch's shape in words."""
  if config.get("job") == "univar":  # two views per pair
    rows = int(config.train.batch_size)
    return spec.tokens_per_step, f"{rows} pairs x 2 views x {spec.length} tokens"
  batch_rows, length = next(iter(spec.batch_shapes.values()))[0]
  return batch_rows * length, f"{batch_rows} x {length} tokens"


def compile_step(config, devices) -> Attempt:
  """Compiles `config`'s train step for `devices`; an out-of-memory compile is a result."""
  from underrep_jax import validation
  from underrep_jax.train import program as program_lib
  validation.validate_training(config, num_devices=len(devices))
  spec = train_spec(config)
  program = program_lib.build(config, _mesh(config, devices), spec.init_params, spec.loss_fn)
  return compile_attempt(lambda: program.compile(program.abstract_batch(spec.batch_shapes)))


def compile_attempt(compile_fn) -> Attempt:
  """Runs `compile_fn` (a compile for the target); an out-of-memory compile is a result."""
  import jax
  start = time.perf_counter()
  try:
    compiled = compile_fn()
  except jax.errors.JaxRuntimeError as e:
    if "RESOURCE_EXHAUSTED" not in str(e):
      raise
    return Attempt(time.perf_counter() - start, out_of_memory=_oom_reason(str(e)))
  seconds = time.perf_counter() - start
  stats = compiled.memory_analysis()
  memory = dict(argument=stats.argument_size_in_bytes, output=stats.output_size_in_bytes,
                alias=stats.alias_size_in_bytes, temp=stats.temp_size_in_bytes,
                code=stats.generated_code_size_in_bytes)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return Attempt(seconds, memory=memory, flops=(cost or {}).get("flops"))


def _oom_reason(message: str) -> str:
  """The compiler's out-of-memory error as one line ("used 20.5G of 15.48G hbm")."""
  used = (re.search(r"Used ([\d.]+\w?) of ([\d.]+\w?) hbm", message)
          or re.search(r"required for [^(]*\(([\d.]+\w?)\) exceeds available HBM "
                       r"\(([\d.]+\w?)\)", message))
  if used:
    return (f"the compiler needs {used.group(1)} of the {used.group(2)} HBM a chip has "
            "(RESOURCE_EXHAUSTED at compile time)")
  first = next((l.strip() for l in message.splitlines() if l.strip()), message)
  return first[:300]


def _with(config, **fields):
  """A copy of `config` with dotted fields replaced ("model.remat": True)."""
  config = copy.deepcopy(config)
  for dotted, value in fields.items():
    section, name = dotted.split(".")
    config[section][name] = value
  return config


def step_flops(config, devices, attempt: Attempt) -> tuple[float | None, str]:
  """XLA's FLOPs per step over all chips, and how they were counted.

  GPU compiles count none: the same step is compiled on as many host CPU devices. XLA
  counts a loop body once: a layer scan is compiled again unrolled (scan_layers off) for
  the count, a microbatch scan is multiplied by the microbatches (the optimizer update,
  then counted M times, is a negligible part).
  """
  import jax
  notes = []
  if devices[0].platform != "tpu":
    devices = jax.devices("cpu")[:len(devices)]
    notes.append(f"counted on {len(devices)} host CPU devices")
    if not config.model.scan_layers:
      attempt = compile_step(config, devices)
  if config.model.scan_layers:
    attempt = compile_step(_with(config, **{"model.scan_layers": False}), devices)
    notes.append("layers unrolled for the count")
  if attempt.flops is None:
    return None, "XLA gave no count"
  flops = attempt.flops * len(devices)
  microbatches = int(config.train.microbatches)
  if microbatches > 1:
    flops *= microbatches
    notes.append(f"x {microbatches} microbatches")
  if config.model.remat:
    notes.append("with remat's recomputed forward, which the model count leaves out")
  return flops, "; ".join(notes)


def suggest(config, devices, target: Target, budget_s: float) -> str:
  """What fits instead, from a few compiles: remat, fsdp over every chip, then the
  largest per-chip batch (halving, binary search) under both; stops past `budget_s`."""
  deadline = time.perf_counter() + budget_s
  tried = 0

  def fits(candidate) -> bool:
    nonlocal tried
    tried += 1
    return compile_step(candidate, devices).fits(target.hbm_bytes)

  def out_of_time() -> bool:
    return budget_s <= 0 or time.perf_counter() > deadline

  lean, steps = config, []
  if not config.model.remat:
    lean = _with(lean, **{"model.remat": True})
    steps.append(("--config.model.remat=True", lean))
  batch, microbatches = int(config.train.batch_size), int(config.train.microbatches)
  all_fsdp = (1, -1, 1)
  if tuple(config.mesh.shape) != all_fsdp and (batch // microbatches) % len(devices) == 0:
    lean = _with(lean, **{"mesh.shape": all_fsdp})
    steps.append(("--config.mesh.shape='(1,-1,1)'", lean))
  lean_flags = []
  for flag, candidate in steps:
    if out_of_time():
      return f"none found within --search_seconds={budget_s:g} ({tried} compiles)"
    lean_flags.append(flag)
    if fits(candidate):
      return f"fits with {' '.join(lean_flags)} (compiled)"
  with_lean = " ".join(lean_flags + [""])
  dp = _mesh(lean, devices).data_parallel_size
  per_chip = batch // microbatches // dp
  sizes = [per_chip // 2**k for k in range(1, per_chip.bit_length())]  # halvings, to 1
  best, low, high = None, 0, len(sizes) - 1
  while low <= high:  # sizes descend: find the first (largest) that fits
    if out_of_time():
      return (f"none found within --search_seconds={budget_s:g} ({tried} compiles)"
              + (f"; {best} rows per data shard fit" if best else ""))
    middle = (low + high) // 2
    if fits(_with(lean, **{"train.batch_size": sizes[middle] * dp, "train.microbatches": 1})):
      best, high = sizes[middle], middle - 1
    else:
      low = middle + 1
  if best is None:
    return (f"even 1 row per data shard with {with_lean or 'this config '}does not fit: "
            "a larger slice or a smaller model is needed")
  rows = best * dp
  keep = (f", or keep batch {batch} with {with_lean}--config.train.microbatches={batch // rows}"
          if batch % rows == 0 else "")
  return (f"largest batch that fits: {best} rows per data shard (compiled): {with_lean}"
          f"--config.train.batch_size={rows}{keep}")


def _gib(n: int) -> str:
  return f"{n / GIB:.2f} GiB"


def _host_cpu() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
  except OSError:
    names = []
  return f"{names[0] if names else 'unknown CPU'}, {os.cpu_count()} cores"


def print_target(target: Target, devices, topology) -> None:
  print(f"target: {target.name}: {len(devices)} x {devices[0].device_kind}, "
        f"{_gib(target.hbm_bytes)} HBM each; mesh (data, fsdp, tensor) "
        f"{topology.mesh.devices.shape}")


def print_memory(attempt: Attempt, target: Target, indent: str = "") -> None:
  m = attempt.memory
  print(f"{indent}memory per chip: arguments {_gib(m['argument'])}, outputs "
        f"{_gib(m['output'])} ({_gib(m['alias'])} aliased to donated arguments), "
        f"temporaries {_gib(m['temp'])}, generated code {_gib(m['code'])}")
  print(f"{indent}peak per chip: {_gib(attempt.peak)} of {_gib(target.hbm_bytes)} HBM "
        f"({100 * attempt.peak / target.hbm_bytes:.0f}%)"
        + ("; JAX's GPU allocator takes 75% of it unless XLA_PYTHON_CLIENT_MEM_FRACTION "
           "says otherwise" if target.platform == "cuda" else ""))


@dataclasses.dataclass(frozen=True)
class EvaluationStep:
  """One jitted step of the evaluation job, as its Scorer or Generator calls it."""
  name: str          # scoring | generation
  words: str         # its batch in words
  model_flops: float | None  # forward FLOPs of one call (decoders: the model's own count)
  lower: object       # devices -> jax Lowered

  def compile(self, devices) -> Attempt:
    return compile_attempt(lambda: self.lower(devices).compile())


def evaluation_steps(config) -> tuple[int, list[EvaluationStep]]:
  """The model's parameter count and the evaluate job's steps for `config`: rank
  classification's scoring call (if a classification task is selected) and generation's
  (if a generation task is), at the job's batch size and its longest prompts
  (`max_prompt_tokens`)."""
  import tasks
  from underrep_jax.evaluation import generation, scoring
  from underrep_jax.jobs import evaluate
  from underrep_jax.models import batching, initialize
  from underrep_jax.train import metrics as metrics_lib
  tasks.registry.import_modules(config.task_modules)
  selection = evaluate.select(config)
  source = _model_source(config)
  if source.kind not in ("decoder", "encoder_decoder"):
    raise errors.ConfigError(f"model {source.family} is an encoder: the evaluate job needs "
                             "a language model")
  module = source.module()
  init = initialize.make_init_fn(module)
  prompt = int(config.max_prompt_tokens)
  new = int(config.max_new_tokens)
  beams = int(config.num_beams)

  params_count, _ = metrics_lib.module_flops_per_token(module, init, prompt)

  def forward_flops(tokens: int, context: int) -> float:
    """Forward FLOPs of `tokens` positions attending to `context` (a third of the
    training count, which is forward + backward); the family's own count, from its
    config alone (no abstract initialisation per call)."""
    return tokens * module.config.flops_per_token(context) / 3

  # An encoder-decoder's count is per token over both stacks, which its evaluation runs
  # on different tokens (prompt: encoder; labels and new tokens: decoder): no count.
  decoder = source.kind == "decoder"

  def batch_rows(devices) -> int:
    return batching.round_up(int(config.batch_size), _mesh(config, devices).data_parallel_size)

  rows = int(config.batch_size)
  steps = []
  if selection.classification:
    labels = max(len(t.labels) for group in selection.classification.values() for t in group)
    whole = config.scoring == "whole"
    label_tokens = rows * labels * PLANNED_LABEL_TOKENS
    # Without the prompt's own score only its last position's logits are used: XLA
    # leaves the output head out for the others.
    cfg = module.config
    unused_head = 0 if whole or not decoder else (
        rows * (prompt - 1) * 2 * cfg.hidden_size * cfg.vocab_size)
    steps.append(EvaluationStep(
        "scoring",
        f"{rows} prompts x {prompt} tokens, {labels} labels x {PLANNED_LABEL_TOKENS} tokens "
        f"each from the prompt's {'cache' if decoder else 'encoding'} (scoring "
        f"{config.scoring})",
        forward_flops(rows * prompt, prompt) + forward_flops(label_tokens, prompt)
        - unused_head if decoder else None,
        lambda devices: scoring.lower(
            module, source.kind, _mesh(config, devices), batch_size=batch_rows(devices),
            prompt_length=prompt, num_labels=labels, label_length=PLANNED_LABEL_TOKENS,
            with_prompt=whole)))
  if selection.generation:
    search = "greedy" if beams == 1 else f"beam search, {beams} beams"
    steps.append(EvaluationStep(
        "generation", f"{rows} prompts x {prompt} tokens + {new} new tokens, {search}",
        forward_flops(rows * prompt, prompt) + forward_flops(rows * beams * new, prompt + new)
        if decoder else None,
        lambda devices: generation.lower(
            module, source.kind, _mesh(config, devices), batch_size=batch_rows(devices),
            prompt_length=prompt, max_new_tokens=new, num_beams=beams, greedy=beams == 1)))
  return params_count, steps


def suggest_evaluation(config, devices, target: Target, budget_s: float) -> str:
  """What fits instead: FSDP over every chip, then the largest batch (halving)."""
  deadline = time.perf_counter() + budget_s

  def fits(candidate) -> bool:
    return all(step.compile(devices).fits(target.hbm_bytes)
               for step in evaluation_steps(candidate)[1])

  lean, flags_used = config, []
  if tuple(config.mesh.shape) != (1, -1, 1):
    lean = _with(lean, **{"mesh.shape": (1, -1, 1)})
    flags_used.append("--config.mesh.shape='(1,-1,1)'")
    if budget_s > 0 and fits(lean):
      return f"fits with {flags_used[0]} (compiled)"
  batch = int(config.batch_size) // 2
  while batch >= 1 and budget_s > 0 and time.perf_counter() < deadline:
    if fits(_with(lean, **{"batch_size": batch})):
      return f"fits with {' '.join(flags_used + [f'--config.batch_size={batch}'])} (compiled)"
    batch //= 2
  if batch < 1:
    return "even one row per batch does not fit: a larger slice or a smaller model is needed"
  return f"none found within --search_seconds={budget_s:g}"


def plan_evaluation(config, target: Target, search_seconds: float) -> int:
  """Prints the plan of the evaluate job's steps on `target`; 0 all fit, 3 not."""
  devices = target_devices(target)
  config = _with_local_model(config)
  params_count, steps = evaluation_steps(config)
  topology = _mesh(config, devices)
  model = config.model
  print_target(target, devices, topology)
  print(f"model: {_model_source(config).family}, {params_count / 1e6:.1f}M parameters; "
        f"dtype {model.dtype}, params {model.param_dtype}; batches over "
        f"{topology.data_parallel_size} data shards")
  fit = True
  for step in steps:
    print(f"{step.name}: {step.words}")
    attempt = step.compile(devices)
    print(f"  compiled in {attempt.seconds:.1f} s on {_host_cpu()}")
    if attempt.out_of_memory:
      print(f"  does not fit: {attempt.out_of_memory}")
      fit = False
      continue
    print_memory(attempt, target, indent="  ")
    fit = fit and attempt.fits(target.hbm_bytes)
    counts = []
    if step.name == "scoring" and attempt.flops and target.platform == "tpu":
      xla_flops = attempt.flops * len(devices)
      counts.append(f"XLA {xla_flops:.3g}")
      if step.model_flops and not model.scan_layers:
        counts.append(f"XLA/model {xla_flops / step.model_flops:.3f}")
    elif step.name == "generation":
      counts.append("XLA counts the decode loop's body once")
    counts.append(f"model forward {step.model_flops:.3g}" if step.model_flops else
                  "no model count for an encoder-decoder")
    print(f"  flops per call: {', '.join(counts)}")
  if fit:
    print(f"verdict: fits on {target.name}")
    return 0
  print(f"verdict: does not fit on {target.name}")
  print(f"suggestion: {suggest_evaluation(config, devices, target, search_seconds)}")
  return EXIT_DOES_NOT_FIT


def plan(config, target: Target, search_seconds: float) -> int:
  """Prints the plan of `config` on `target`; returns the exit code (0 fits, 3 not)."""
  if config.get("job") == "experiment":  # one stage of it: --config.only=STAGE
    from underrep_jax.experiments import runner
    parsed = flags.FLAGS.is_parsed()
    workdir = (parsed and flags.FLAGS.workdir) or launcher.default_workdir(
        flags.FLAGS["config"].serialize() if parsed else "experiment")
    config = runner.single_stage_config(config, os.path.abspath(workdir))
  if config.get("job") == "evaluate":
    return plan_evaluation(config, target, search_seconds)
  if config.get("job") not in PLANNED_JOBS:
    raise errors.ConfigError(f"config.job={config.get('job')!r}: plan builds the steps "
                             f"of the {', '.join(PLANNED_JOBS[:-1])} and "
                             f"{PLANNED_JOBS[-1]} jobs")
  devices = target_devices(target)
  config = _with_local_model(config)
  spec = train_spec(config)
  batch_rows = int(config.train.batch_size)
  tokens, batch_words = step_tokens(config, spec)
  model = config.model
  topology = _mesh(config, devices)
  data_shards = topology.data_parallel_size
  print_target(target, devices, topology)
  print(f"model: {spec.module.__class__.__name__}, {spec.params_count / 1e6:.1f}M parameters; "
        f"batch {batch_words} ({batch_rows // data_shards} rows per data shard, "
        f"microbatches {config.train.microbatches}); dtype {model.dtype}, params "
        f"{model.param_dtype}, remat {model.remat}, scan_layers {model.scan_layers}")
  attempt = compile_step(config, devices)
  print(f"compiled in {attempt.seconds:.1f} s on {_host_cpu()}")
  model_flops = spec.flops_per_token * tokens
  if attempt.out_of_memory:
    print(f"flops per step: model {model_flops:.3g} (XLA: none, the step did not compile)")
    print(f"verdict: does not fit on {target.name}: {attempt.out_of_memory}")
  else:
    print_memory(attempt, target)
    xla_flops, how = step_flops(config, devices, attempt)
    ratio = f", XLA/model {xla_flops / model_flops:.3f}" if xla_flops else ""
    xla_text = f"{xla_flops:.3g}" if xla_flops else "n/a"
    print(f"flops per step: XLA {xla_text}{f' ({how})' if how else ''}, model "
          f"{model_flops:.3g} ({spec.flops_per_token:.3g} per token x {tokens} tokens)"
          f"{ratio}")
    if attempt.fits(target.hbm_bytes):
      print(f"verdict: fits on {target.name}")
      return 0
    print(f"verdict: does not fit on {target.name}: peak {_gib(attempt.peak)} > "
          f"{_gib(target.hbm_bytes)} HBM per chip")
  print(f"suggestion: {suggest(config, devices, target, search_seconds)}")
  return EXIT_DOES_NOT_FIT


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    launcher.usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
  config = flags.FLAGS.config
  if config is None:
    launcher.usage_error("--config is required, e.g. "
                         "--config=configs/instructalign.py:bloomz-560m")

  def run_plan():
    sys.stdout.reconfigure(line_buffering=True)  # each line as it is known, even piped
    target = target_named(_TARGET.value)
    choose_platforms(target)
    return plan(config, target, _SEARCH_SECONDS.value)

  sys.exit(launcher.run_reporting_errors(run_plan, debug=flags.FLAGS.debug))


def run() -> None:
  app.run(main, flags_parser=launcher.parse_flags)


if __name__ == "__main__":
  run()
