"""Runs an experiment's stages in dependency order, each a normal job in DIR/<stage>/.

A stage is done when DIR/<stage>/.stage_done.json exists (written atomically when its job
returned) and holds the hash of the stage's config and of its dependencies' hashes: a
re-run skips it. A stage whose directory exists without that file was interrupted: its
job runs again in the same workdir and resumes from its checkpoints (the training jobs
do; an evaluation starts over). A finished stage whose config (or a dependency's)
changed is refused in one line, naming the changed fields, unless `force`: then its old
workdir is moved aside and the stage runs again.

Each stage's job runs in this process the way the launcher runs a job: the config is
validated (`validation.validate`), the stage's workdir is locked
(`train.workdir.locked`), then `run(config, workdir)` of `underrep_jax.jobs.<job>`.
"""

import copy
import dataclasses
import hashlib
import importlib
import json
import os
import pathlib
import re
import shlex
import time

from absl import logging
import ml_collections

from underrep_jax import errors
from underrep_jax import files
from underrep_jax.experiments import configs

DONE_FILE = ".stage_done.json"


def _aside_name(stage) -> pathlib.Path:
  """Where a replaced stage's workdir goes: <stage>.replaced-<time>[-<n>], never taken
  (two replacements within one second get different names)."""
  base = f"{stage.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
  aside, n = stage.workdir.with_name(base), 1
  while aside.exists():
    aside, n = stage.workdir.with_name(f"{base}-{n}"), n + 1
  return aside
_REF = re.compile(r"\{stage:([A-Za-z0-9_]+)\}")
DONE, PENDING, STARTED, CHANGED = "done", "pending", "started", "changed"


@dataclasses.dataclass
class Stage:
  name: str
  job: str
  raw: ml_collections.ConfigDict      # as declared ({stage:...} tokens kept)
  config: ml_collections.ConfigDict   # tokens replaced by workdirs
  depends_on: list[str]
  description: str
  workdir: pathlib.Path
  hash: str = ""


def _split(text: str) -> list[str]:
  return [s.strip() for s in (text or "").split(",") if s.strip()]


def _strings(config: ml_collections.ConfigDict, prefix: str = ""):
  """(dotted field, value) of every string field."""
  for key in config.keys():
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      yield from _strings(value, f"{prefix}{key}.")
    elif isinstance(value, str):
      yield f"{prefix}{key}", value


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  for part in parents:
    config = config[part]
  config[leaf] = value


def _flat(value, prefix: str = "") -> dict:
  if isinstance(value, dict):
    out = {}
    for k, v in value.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix.rstrip("."): json.loads(json.dumps(value, default=repr))}


def stages(experiment: ml_collections.ConfigDict, workdir: str | os.PathLike) -> list[Stage]:
  """The experiment's stages in a dependency order (the declared order where it allows),
  their tokens replaced; an unknown dependency or a cycle is a ConfigError."""
  workdir = pathlib.Path(workdir)
  declared = experiment.stages
  names = _split(experiment.get("stage_order", "")) or list(declared.keys())
  names += [n for n in declared.keys() if n not in names]
  by_name = {}
  for name in names:
    if name not in declared:
      raise errors.ConfigError(f"config.stage_order names {name!r}, which is not in "
                               f"config.stages")
    spec = declared[name]
    if "config" not in spec or "job" not in spec.config:
      raise errors.ConfigError(f"config.stages.{name}: needs a `config` with a `job` field")
    raw = spec.config
    deps = list(_split(spec.get("depends_on", "")))
    resolved = copy.deepcopy(raw)
    for field, value in _strings(raw):
      new = value.replace(configs.EXPERIMENT_TOKEN, str(workdir))
      for ref in _REF.findall(value):
        if ref not in deps:
          deps.append(ref)
      new = _REF.sub(lambda m: str(workdir / m.group(1)), new)
      if new != value:
        _set(resolved, field, new)
    by_name[name] = Stage(name=name, job=raw.job, raw=raw, config=resolved, depends_on=deps,
                          description=spec.get("description", ""), workdir=workdir / name)
  for stage in by_name.values():
    for dep in stage.depends_on:
      if dep not in by_name:
        raise errors.ConfigError(f"config.stages.{stage.name}: depends on {dep!r}, which is "
                                 f"not a stage of this experiment")
  ordered, placed = [], set()
  while len(ordered) < len(names):
    ready = [n for n in names if n not in placed and all(d in placed
                                                         for d in by_name[n].depends_on)]
    if not ready:
      left = [n for n in names if n not in placed]
      raise errors.ConfigError(f"config.stages: a dependency cycle among {', '.join(left)}")
    ordered.append(by_name[ready[0]])
    placed.add(ready[0])
  hashes = {}
  for stage in ordered:
    text = json.dumps({"config": stage.raw.to_dict(),
                       "depends_on": {d: hashes[d] for d in stage.depends_on}},
                      sort_keys=True, default=repr)
    stage.hash = hashes[stage.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
  return ordered


def read_done(stage: Stage) -> dict | None:
  path = stage.workdir / DONE_FILE
  if not path.is_file():
    return None
  try:
    return json.loads(path.read_text())
  except (OSError, json.JSONDecodeError):
    logging.warning("%s: unreadable; the stage counts as not finished", path)
    return None


def status(stage: Stage) -> str:
  done = read_done(stage)
  if done is not None:
    return DONE if done.get("hash") == stage.hash else CHANGED
  return STARTED if stage.workdir.exists() else PENDING


def changed_fields(stage: Stage, done: dict) -> list[str]:
  before, now = done.get("config", {}), _flat(stage.raw.to_dict())
  fields = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
  return fields or ["(a dependency was re-run with another config)"]


def stage_command(experiment: ml_collections.ConfigDict, workdir: pathlib.Path,
                  stage: Stage, overrides: list[str]) -> str:
  """The command line that runs `stage` alone (a cluster job of its own)."""
  args = ["python", "-m", "underrep_jax.main", f"--config={experiment.command}",
          f"--workdir={workdir}", *overrides, f"--config.only={stage.name}"]
  return " ".join(shlex.quote(a) for a in args)


def listing(experiment: ml_collections.ConfigDict, workdir: str | os.PathLike,
            overrides: list[str] = ()) -> str:
  workdir = pathlib.Path(workdir)
  found = stages(experiment, workdir)
  counts = {}
  lines = [f"experiment {experiment.name} in {workdir}: {len(found)} stages", ""]
  for stage in found:
    state = status(stage)
    counts[state] = counts.get(state, 0) + 1
    deps = ", ".join(stage.depends_on) or "-"
    lines.append(f"{stage.name} [{stage.job}] {state}; depends on: {deps}")
    if stage.description:
      lines.append(f"    {stage.description}")
    lines.append(f"    {stage_command(experiment, workdir, stage, list(overrides))}")
  lines += ["", "status: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
  return "\n".join(lines)


def preempted(workdir: pathlib.Path) -> bool:
  """Whether the training job in `workdir` stopped early on SIGTERM (its summary says so:
  it returns normally after saving, and must not count as finished)."""
  for path in workdir.glob("*_summary.json"):
    try:
      if json.loads(path.read_text()).get("preempted"):
        return True
    except (OSError, json.JSONDecodeError, AttributeError):
      continue
  return False


def run_job(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """What the launcher does for one job: validate, lock the workdir, run."""
  from underrep_jax import validation
  validation.validate(config)
  if config.get("data_dir"):
    from underrep_jax.data import sources
    sources.set_data_dir(config.data_dir)
  import jax
  from underrep_jax.train import workdir as workdir_lib
  job = importlib.import_module(f"underrep_jax.jobs.{config.job}")
  workdir.mkdir(parents=True, exist_ok=True)
  with workdir_lib.locked(workdir, enabled=jax.process_index() == 0):
    job.run(config, str(workdir))


def _selected(found: list[Stage], only: str) -> list[Stage]:
  wanted = _split(only)
  if not wanted:
    return found
  names = [s.name for s in found]
  unknown = [n for n in wanted if n not in names]
  if unknown:
    raise errors.ConfigError(f"config.only: no stage {unknown[0]!r}; stages: "
                             f"{', '.join(names)}")
  by_name = {s.name: s for s in found}
  for stage in found:
    if stage.name not in wanted:
      continue
    for dep in stage.depends_on:
      if dep in wanted:
        continue
      state = status(by_name[dep])
      if state != DONE:
        raise errors.ConfigError(
            f"stage {stage.name!r} needs stage {dep!r}, which is not finished ({state}); "
            f"run --config.only={dep} first")
  return [s for s in found if s.name in wanted]


def validate_stages(experiment: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
  """Every stage's config passes the launcher's checks (before any stage runs)."""
  _validate(stages(experiment, workdir))


def _validate(selected: list[Stage]) -> None:
  from underrep_jax import validation
  for stage in selected:
    try:
      validation.validate(stage.config)
    except errors.ConfigError as e:
      raise errors.ConfigError(f"stage {stage.name!r}: {e}") from None


def run(experiment: ml_collections.ConfigDict, workdir: str | os.PathLike,
        run_stage=run_job) -> dict[str, str]:
  """Runs the selected stages in order; returns {stage: "ran" | "skipped" |
  "interrupted"} (a training stage stopped by SIGTERM ends the run, not marked done)."""
  workdir = pathlib.Path(workdir)
  found = stages(experiment, workdir)
  selected = _selected(found, experiment.get("only", ""))
  _validate(selected)  # a bad override stops before the first stage, not the fifth
  for stage in selected:  # and so does a changed finished stage
    if status(stage) == CHANGED and not experiment.get("force"):
      fields = changed_fields(stage, read_done(stage))
      raise errors.ConfigError(
          f"stage {stage.name!r} finished with another config (changed: "
          f"{', '.join(fields[:6])}{', ...' if len(fields) > 6 else ''}); "
          f"--config.force=True reruns it (its workdir is moved aside)")
  outcome = {}
  for stage in selected:
    state = status(stage)
    if state == DONE:
      logging.info("stage %s: done, skipped", stage.name)
      outcome[stage.name] = "skipped"
      continue
    if state == CHANGED:
      fields = changed_fields(stage, read_done(stage))
      aside = _aside_name(stage)
      stage.workdir.rename(aside)
      logging.warning("stage %s: config changed (%s); moved its workdir to %s and running it "
                      "again", stage.name, ", ".join(fields[:6]), aside)
    elif state == STARTED:
      logging.info("stage %s: interrupted earlier; resuming in %s", stage.name, stage.workdir)
    logging.info("stage %s (%s): running in %s", stage.name, stage.job, stage.workdir)
    start = time.time()
    run_stage(stage.config, stage.workdir)
    if preempted(stage.workdir):  # SIGTERM: the job saved and stopped early
      logging.warning("stage %s: stopped by SIGTERM before its end; a re-run resumes it",
                      stage.name)
      outcome[stage.name] = "interrupted"
      break
    files.write_json(stage.workdir / DONE_FILE, {
        "stage": stage.name, "job": stage.job, "hash": stage.hash,
        "seconds": round(time.time() - start, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": _flat(stage.raw.to_dict())})
    outcome[stage.name] = "ran"
  return outcome


def single_stage_config(experiment: ml_collections.ConfigDict, workdir: str | os.PathLike
                        ) -> ml_collections.ConfigDict:
  """The resolved config of the one stage `experiment.only` names (for `plan`)."""
  wanted = _split(experiment.get("only", ""))
  found = {s.name: s for s in stages(experiment, workdir)}
  if len(wanted) != 1 or wanted[0] not in found:
    raise errors.ConfigError(
        f"config.only={experiment.get('only', '')!r}: name one stage of the experiment "
        f"(e.g. --config.only={next(iter(found), 'NAME')})")
  return found[wanted[0]].config
