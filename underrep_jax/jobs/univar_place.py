"""Job: place a new LLM on a UniVaR value map (configs/univar_place.py), in three stages.

`config.stage` picks one; each is a normal job with its own workdir, and each later
stage reads the earlier one's workdir from a config field:

- `ask`: the value-eliciting questions (EUValues items, SpeechMap prompts or a user's
  CSV) in each language of `ask.languages` (questions the set lacks in a language are
  first machine-translated by `translator`), answered by `model` with the project's
  generation, sampled as the original (temperature, top-k, top-p; `sampling`) or
  greedy. Writes WORKDIR/answers/<name>.csv (UniVaR format, mt_lang = the language the
  row is written in) and WORKDIR/progress/*.jsonl (finished rows; a re-run skips them).
- `backtranslate`: every non-English row of `backtranslate.answers` (an ask workdir or
  a folder of UniVaR CSVs) brought to English by `translator` (prompted translation with
  a decoder or mT0): the answer always, the question from the English original the ask
  stage started from where there is one, else translated. Writes WORKDIR/qas/<model>.csv
  (mt_lang = eng, as the original's) and records in WORKDIR/progress/<model>.jsonl and
  backtranslate_summary.json which texts were translated.
- `map`: the new identities' QAs (`map.qas`) embedded with the trained encoder of a
  univar workdir (`map.univar_workdir`) the way its map was built, placed beside the
  known identities, with their nearest known identities (univar/placement.py).
"""

import collections
import json
import pathlib

from absl import logging
import jax
import ml_collections
import numpy as np

from underrep_jax import errors
from underrep_jax import files
from underrep_jax import parallel
from underrep_jax.data import sources
from underrep_jax.evaluation import generation
from underrep_jax.evaluation import model_loading
from underrep_jax.jobs import univar as univar_job
from underrep_jax.models import hf
from underrep_jax.models import runtime
from underrep_jax.train import checkpointing
from underrep_jax.univar import ask as ask_lib
from underrep_jax.univar import data as data_lib
from underrep_jax.univar import encoder as encoder_lib
from underrep_jax.univar import sampling as sampling_lib
from underrep_jax.univar import views as views_lib

STAGES = ("ask", "backtranslate", "map")
QUESTION_SETS = ("euvalues", "speechmap")
ANSWERS_DIR = "answers"
QAS_DIR = "qas"
PROGRESS_DIR = "progress"
QUESTIONS_PROGRESS = "questions.jsonl"


def _is_writer() -> bool:
  return jax.process_index() == 0


def _progress(path: pathlib.Path) -> ask_lib.Progress:
  return ask_lib.Progress(path, write=_is_writer())


# --- Models and generation ----------------------------------------------------------------


def load_model(model_config, mesh_config, field: str):
  """The promptable model of config section `field` (model or translator)."""
  if not model_config.path:
    raise errors.ConfigError(f"no {field}: set --config.{field}.path to an HF directory, a "
                             "training workdir or a Hub id")
  model = model_loading.source(model_config).load(parallel.Topology.from_config(mesh_config))
  if model.kind not in ("decoder", "encoder_decoder"):
    raise errors.ModelError(f"{field}.path={model_config.path!r} is a {model.family} "
                            f"{model.kind}; asking and translating need a decoder-only or "
                            "encoder-decoder model")
  return model


def make_generator(model, settings, sampling=None):
  """`Sampler` when `sampling.temperature` > 0, else the project's greedy/beam Generator."""
  if sampling is not None and sampling.temperature > 0:
    n = int(settings.max_new_tokens)
    if model.kind == "decoder":
      fns = generation.decoder_fns(model.module, n)
    else:
      start = model.ids.decoder_start
      fns = generation.encoder_decoder_fns(model.module, n,
                                           model.ids.pad if start is None else start)
    return sampling_lib.Sampler(model, fns, batch_size=settings.batch_size, max_new_tokens=n,
                                temperature=sampling.temperature, top_k=sampling.top_k,
                                top_p=sampling.top_p, seed=sampling.seed,
                                max_prompt_tokens=settings.max_prompt_tokens)
  return generation.Generator(model, batch_size=settings.batch_size,
                              max_new_tokens=settings.max_new_tokens,
                              num_beams=settings.num_beams, greedy=settings.num_beams == 1,
                              max_prompt_tokens=settings.max_prompt_tokens)


class _Translator:
  """The translator model, loaded on first use; `translate(texts, source, target)`."""

  def __init__(self, config):
    self.config = config
    self._generator = None

  def translate(self, texts, source: str, target: str, desc: str) -> list[str]:
    if self._generator is None:
      model = load_model(self.config.translator, self.config.mesh, "translator")
      self._generator = make_generator(model, self.config.translate)
    prompts = [ask_lib.translation_prompt(self.config.translate.template, t, source, target)
               for t in texts]
    return self._generator.generate(prompts, desc=desc)


# --- ask ----------------------------------------------------------------------------------


def read_questions(settings) -> list[data_lib.Question]:
  """The question set of `ask.questions`, cut to the first `ask.max_questions` qids."""
  spec = str(settings.questions)
  if spec == "euvalues":
    questions = data_lib.euvalues_questions()
  elif spec == "speechmap":
    questions = data_lib.speechmap_questions()
  elif spec.endswith(".csv") or pathlib.Path(spec).is_file():
    if not pathlib.Path(spec).is_file():
      raise errors.DataError(f"ask.questions={spec!r}: no such file")
    questions = data_lib.read_questions_csv(spec)
  else:
    raise errors.ConfigError(f"ask.questions={spec!r}: expected {', '.join(QUESTION_SETS)} or "
                             "a CSV file of questions (columns qid, question[, lang])")
  if settings.max_questions > 0:
    keep = list(dict.fromkeys(q.qid for q in questions))[:int(settings.max_questions)]
    questions = [q for q in questions if q.qid in set(keep)]
  return questions


def ask_questions(config, workdir: pathlib.Path, plan, translator: _Translator) -> dict:
  """(qid, lang) -> the question row as asked; translations done (and recorded) once."""
  progress = _progress(workdir / PROGRESS_DIR / QUESTIONS_PROGRESS)
  progress.add([{"qid": p.qid, "lang": p.lang, "question": p.text, "source_lang": p.lang,
                 "source_question": p.text, "translated": False}
                for p in plan if not p.translate and (p.qid, p.lang) not in progress])
  pending = [p for p in plan if p.translate and (p.qid, p.lang) not in progress]
  if pending:
    logging.info("Translating %d questions into the asked languages", len(pending))
  by_pair = collections.defaultdict(list)
  for p in pending:
    by_pair[(p.source_lang, p.lang)].append(p)
  for (source, target), items in by_pair.items():
    for chunk in ask_lib.chunks(items, config.ask.chunk_size):
      texts = translator.translate([p.source_text for p in chunk], source, target,
                                   desc=f"questions {source}->{target}")
      progress.add([{"qid": p.qid, "lang": p.lang, "question": text, "source_lang": source,
                     "source_question": p.source_text, "translated": True}
                    for p, text in zip(chunk, texts)])
  return {key: progress.rows[key] for key in ((p.qid, p.lang) for p in plan)}


def run_ask(config, workdir: pathlib.Path) -> dict:
  if not config.model.path:
    raise errors.ConfigError("no model to ask: set --config.model.path to an HF directory, "
                             "a training workdir or a Hub id")
  languages = ask_lib.parse_languages(config.ask.languages, "ask.languages")
  name = ask_lib.model_name(config.name, config.model.path)
  chat = config.ask.template == ask_lib.CHAT_TEMPLATE
  prompt = None if chat else ask_lib.prompt_fn(config.ask.template)  # checked up front
  plan = ask_lib.question_plan(read_questions(config.ask), languages)
  if not plan:
    raise errors.DataError(f"ask.questions={config.ask.questions!r}: no questions")
  translator = _Translator(config)
  asked = ask_questions(config, workdir, plan, translator)

  progress = _progress(workdir / PROGRESS_DIR / f"{name}.jsonl")
  pending = [p for p in plan if (p.qid, p.lang) not in progress]
  logging.info("%s: %d questions x %d languages, %d answered before, %d to ask", name,
               len({p.qid for p in plan}), len(languages), len(plan) - len(pending),
               len(pending))
  if pending:
    model = load_model(config.model, config.mesh, "model")
    if prompt is None:
      prompt = ask_lib.prompt_fn(ask_lib.CHAT_TEMPLATE, model.source)
    generator = make_generator(model, config.ask, config.sampling)
    for lang in languages:
      items = [p for p in pending if p.lang == lang]
      for chunk in ask_lib.chunks(items, config.ask.chunk_size):
        questions = [asked[(p.qid, p.lang)]["question"] for p in chunk]
        answers = generator.generate([prompt(q) for q in questions], desc=f"{name}/{lang}")
        progress.add([{"qid": p.qid, "lang": p.lang, "question": q, "answer": a, "model": name}
                      for p, q, a in zip(chunk, questions, answers)])
  rows = [{**progress.rows[(p.qid, p.lang)], "mt_lang": p.lang} for p in plan]
  summary = {"stage": "ask", "model": name, "model_path": str(config.model.path),
             "questions": str(config.ask.questions), "languages": languages,
             "rows": len(rows), "answered_now": len(pending),
             "questions_translated": sum(r["translated"] for r in asked.values()),
             "empty_answers": sum(not r["answer"].strip() for r in rows),
             "sampling": (config.sampling.to_dict() if config.sampling.temperature > 0
                          else "greedy" if config.ask.num_beams == 1
                          else f"beam search ({config.ask.num_beams} beams)"),
             "max_new_tokens": int(config.ask.max_new_tokens)}
  if _is_writer():
    summary["csv"] = str(ask_lib.write_univar_csv(workdir / ANSWERS_DIR / f"{name}.csv", rows))
    files.write_json(workdir / f"ask_summary_{name}.json", summary)
  return summary


# --- backtranslate ------------------------------------------------------------------------


def _input_folder(path: str, field: str, *subdirs: str) -> pathlib.Path:
  """`path`, or its first existing `subdirs` when `path` is a workdir of a stage before."""
  if not path:
    raise errors.ConfigError(f"{field} is empty: give the earlier stage's workdir or a "
                             "folder of UniVaR CSVs")
  folder = pathlib.Path(path)
  for subdir in subdirs:
    if (folder / subdir).is_dir():
      return folder / subdir
  if not folder.is_dir():
    raise errors.DataError(f"{field}={path!r}: no such folder")
  return folder


def english_originals(ask_workdir: pathlib.Path) -> dict[tuple[str, str], str]:
  """(qid, lang) -> the English question the ask stage translated into lang, or asked."""
  path = ask_workdir / PROGRESS_DIR / QUESTIONS_PROGRESS
  if not path.is_file():
    return {}
  out = {}
  for row in ask_lib.Progress(path, write=False).rows.values():
    if row["source_lang"] == "eng":
      out[(row["qid"], row["lang"])] = row["source_question"]
  return out


def run_backtranslate(config, workdir: pathlib.Path) -> dict:
  settings = config.backtranslate
  target = ask_lib.parse_languages(settings.target, "backtranslate.target")[0]
  folder = _input_folder(settings.answers, "backtranslate.answers", ANSWERS_DIR)
  originals = (english_originals(pathlib.Path(settings.answers))
               if settings.original_questions and target == "eng" else {})
  for qa in (qas := data_lib.read_univar_csv(folder)):
    if qa.language not in ask_lib.known_languages():
      raise errors.DataError(f"{qa.source}, row {qa.row}, field 'lang': unknown language code "
                             f"{qa.language!r}; known codes: "
                             f"{', '.join(sorted(ask_lib.known_languages()))}")
  by_model = collections.defaultdict(list)
  for qa in qas:
    by_model[qa.model].append(qa)
  translator = _Translator(config)
  summary = {"stage": "backtranslate", "input": str(folder), "target": target, "models": {}}
  for model, rows in by_model.items():
    progress = _progress(workdir / PROGRESS_DIR / f"{model}.jsonl")
    pending = [qa for qa in rows if (qa.qid, qa.language) not in progress]
    progress.add([{"qid": qa.qid, "lang": qa.language, "question": qa.question,
                   "answer": qa.answer, "model": model, "question_from": "as_asked",
                   "answer_translated": False}
                  for qa in pending if qa.language == target])
    by_lang = collections.defaultdict(list)
    for qa in pending:
      if qa.language != target:
        by_lang[qa.language].append(qa)
    for lang, items in by_lang.items():
      for chunk in ask_lib.chunks(items, config.ask.chunk_size):
        answers = translator.translate([qa.answer for qa in chunk], lang, target,
                                       desc=f"{model}/{lang} answers")
        need = [qa for qa in chunk if (qa.qid, qa.language) not in originals]
        translated = dict(zip(
            [(qa.qid, qa.language) for qa in need],
            translator.translate([qa.question for qa in need], lang, target,
                                 desc=f"{model}/{lang} questions") if need else []))
        progress.add([{"qid": qa.qid, "lang": qa.language,
                       "question": originals.get((qa.qid, qa.language),
                                                 translated.get((qa.qid, qa.language))),
                       "answer": answer, "model": model,
                       "question_from": ("original" if (qa.qid, qa.language) in originals
                                         else "translated"),
                       "answer_translated": True, "source_question": qa.question,
                       "source_answer": qa.answer}
                      for qa, answer in zip(chunk, answers)])
    done = [progress.rows[(qa.qid, qa.language)] for qa in rows]
    out_rows = [{**r, "mt_lang": target} for r in done]
    counts = collections.Counter(r["question_from"] for r in done)
    summary["models"][model] = {
        "rows": len(done), "translated_now": sum(qa.language != target for qa in pending),
        "answers_translated": sum(r["answer_translated"] for r in done),
        "questions_translated": counts["translated"],
        "questions_from_english_original": counts["original"],
        "rows_already_in_target": counts["as_asked"]}
    if _is_writer():
      ask_lib.write_univar_csv(workdir / QAS_DIR / f"{_file_name(model)}.csv", out_rows)
  if _is_writer():
    files.write_json(workdir / "backtranslate_summary.json", summary)
  return summary


def _file_name(model: str) -> str:
  return ask_lib.model_name("", model.replace("/", "_"))


# --- map ----------------------------------------------------------------------------------


def load_univar_run(univar_workdir: pathlib.Path):
  """(step, the run's config, its trained encoder params) from WORKDIR/checkpoints."""
  directory = univar_workdir / "checkpoints"
  if not directory.is_dir():
    raise errors.CheckpointError(f"map.univar_workdir={str(univar_workdir)!r}: no "
                                 "checkpoints/ (train it with configs/univar.py first)")
  checkpointer = checkpointing.Checkpointer(directory, keep=None, async_save=False)
  try:
    saved = checkpointer.saved_config()
    if saved is None:
      raise errors.CheckpointError(f"{directory}: no checkpoint with a readable config")
    step, saved_config = saved
    state, _ = checkpointer.restore(step, None)  # the saved tree: step, params, opt_state
  finally:
    checkpointer.close()
  params = jax.tree.map(np.asarray, state["params"])
  return step, ml_collections.ConfigDict(saved_config), params


def run_map(config, workdir: pathlib.Path) -> dict:
  from underrep_jax.univar import placement  # umap / matplotlib: slow to import
  from underrep_jax.univar import value_map
  settings = config.map
  if not settings.univar_workdir:
    raise errors.ConfigError("map.univar_workdir is empty: give the workdir of a trained "
                             "univar run (configs/univar.py)")
  if settings.projection not in placement.PROJECTIONS:
    raise errors.ConfigError(f"map.projection={settings.projection!r}; known: "
                             f"{', '.join(placement.PROJECTIONS)}")
  univar_dir = pathlib.Path(settings.univar_workdir)
  # A backtranslate workdir, or an ask workdir whose answers are English already.
  folder = _input_folder(settings.qas, "map.qas", QAS_DIR, ANSWERS_DIR)
  step, run_config, params = load_univar_run(univar_dir)
  if run_config.get("data_dir") and not config.data_dir:
    sources.set_data_dir(run_config.data_dir)  # the run's own data, as it read it
  _, train, _ = univar_job.prepare_qas(run_config)
  max_words = run_config.data.get("max_answer_words") or None
  new_qas = data_lib.read_univar_csv(folder, max_answer_words=max_words)
  if not new_qas:
    raise errors.DataError(f"map.qas: {folder} has no usable QAs")

  source = runtime.ModelSource.from_config(run_config.model, default_path=hf.minilm_path())
  module = source.module()
  length = univar_job.view_length(run_config)
  views_per_identity = int(settings.views_per_identity or run_config.eval.views_per_identity)
  max_qas = int(run_config.views.max_qas)
  seed = int(run_config.views.seed)
  embed = encoder_lib.Embedder(module, source.tokenizer(), length,
                               int(run_config.eval.batch_size), source.special_ids().pad)

  def identity_points(qas, what):
    texts, labels = views_lib.identity_views(qas, views_per_identity, max_qas, seed=seed)
    return value_map.identity_centroids(embed(params, texts, desc=f"{what} views"), labels)

  known_ids, known = identity_points(train, "known identity")
  new_ids, new = identity_points(new_qas, "new identity")
  known_coords, new_coords = placement.project(known, new, seed=seed,
                                               projection=settings.projection)
  deviation = _map_deviation(univar_dir / value_map.COORDS_CSV, known_ids, known_coords)
  if deviation is not None and deviation > 1e-3 and settings.projection == "transform":
    logging.warning("The refitted map differs from %s by up to %.3g (other views or "
                    "library versions?); the new identities are placed on the refitted one",
                    univar_dir / value_map.COORDS_CSV, deviation)
  nearest = placement.nearest_identities(new, new_ids, known, known_ids, k=settings.nearest)
  info = {"univar_workdir": str(univar_dir), "step": step, "qas": str(folder),
          "new_identities": len(new_ids), "new_qas": len(new_qas),
          "known_identities": len(known_ids), "views_per_identity": views_per_identity,
          "max_qas": max_qas, "max_length": length, "projection": settings.projection,
          "map_deviation": deviation}
  if _is_writer():
    workdir.mkdir(parents=True, exist_ok=True)
    placement.plot_placed(known_coords, known_ids, new_coords, new_ids,
                          workdir / placement.PLACED_PNG,
                          title=f"UniVaR value map: {len(new_ids)} new identities (★) beside "
                                f"{len(known_ids)} known")
    placement.write_placed_csv(workdir / placement.PLACED_CSV, known_ids, known_coords,
                               new_ids, new_coords)
    placement.write_nearest(workdir, nearest)
    placement.write_report(workdir / placement.REPORT_MD, nearest, info)
    files.write_json(workdir / "map_summary.json", {**info, "nearest": nearest})
  return {**info, "nearest": nearest}


def _map_deviation(path: pathlib.Path, identities, coords) -> float | None:
  """Largest coordinate difference between the refitted map and the run's value_map.csv
  (None when the file is absent or lists other identities)."""
  import csv  # pylint: disable=import-outside-toplevel
  if not path.is_file():
    return None
  with open(path, newline="", encoding="utf-8") as f:
    saved = {r["identity"]: (float(r["x"]), float(r["y"])) for r in csv.DictReader(f)}
  if set(saved) != set(identities):
    return None
  return float(max(np.abs(np.asarray(saved[i]) - c).max() for i, c in zip(identities, coords)))


def run(config: ml_collections.ConfigDict, workdir: str) -> None:
  workdir = pathlib.Path(workdir)
  if config.stage not in STAGES:
    raise errors.ConfigError(f"stage={config.stage!r}; known: {', '.join(STAGES)}")
  workdir.mkdir(parents=True, exist_ok=True)
  stage = {"ask": run_ask, "backtranslate": run_backtranslate, "map": run_map}[config.stage]
  summary = stage(config, workdir)
  logging.info("Done (%s): %s", config.stage, json.dumps(
      {k: v for k, v in summary.items() if k != "nearest"}, indent=1, default=str))
