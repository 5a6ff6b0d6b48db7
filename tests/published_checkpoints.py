"""Tiny checkpoints laid out as the published Hugging Face models are.

`tests/published/<model>/config.json` is the model's published config.json with its sizes
shrunk (see tests/published/README.md). `write_checkpoint(name, out_dir)` builds the tiny
transformers PyTorch model from that config, saves it as safetensors under the tensor names
the published checkpoint carries (BLOOMZ without `transformer.`/`lm_head`, mt0 with or
without `shared.weight`, Mistral sharded with an index, sentence-transformers saves with
`position_ids` and pooler tensors) and adds a small tokenizer.json. torch and transformers
are imported only when it runs.
"""

import json
import pathlib
import shutil

PUBLISHED = pathlib.Path(__file__).resolve().parent / "published"

# fixture name -> (directory under published/, transformers model class, key layout).
FIXTURES = {
    "bloomz-560m": ("bloomz-560m", "BloomForCausalLM", "bare_tied"),
    "mt0-base": ("mt0-base", "MT5ForConditionalGeneration", "shared_only"),
    "mt0-base-no-shared": ("mt0-base", "MT5ForConditionalGeneration", "stack_embeddings_only"),
    "xglm-564M": ("xglm-564M", "XGLMForCausalLM", "tied"),
    "Qwen2.5-0.5B-Instruct": ("Qwen2.5-0.5B-Instruct", "Qwen2ForCausalLM", "tied"),
    "Llama-3.2-1B": ("Llama-3.2-1B", "LlamaForCausalLM", "tied"),
    "Mistral-7B-v0.1": ("Mistral-7B-v0.1", "MistralForCausalLM", "sharded"),
    "xlm-roberta-base": ("xlm-roberta-base", "XLMRobertaForMaskedLM", "tied"),
    "LaBSE": ("LaBSE", "BertModel", "sentence_transformers"),
    "stsb-xlm-r-multilingual": ("stsb-xlm-r-multilingual", "XLMRobertaModel",
                                "sentence_transformers"),
}

# Special tokens at their published ids (those inside the shrunk vocabulary).
SPECIAL_TOKENS = {
    "bloom": {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3},
    "mt5": {"<pad>": 0, "</s>": 1, "<unk>": 2},
    "xglm": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3},
    "xlm-roberta": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3},
    "bert": {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102},
}


def published_config(name: str) -> dict:
  directory, _, _ = FIXTURES[name]
  return json.loads((PUBLISHED / directory / "config.json").read_text())


def _torch_model(name: str, out: pathlib.Path, seed: int):
  import torch
  import transformers
  _, model_cls, _ = FIXTURES[name]
  config = transformers.AutoConfig.from_pretrained(out)
  torch.manual_seed(seed)
  model = getattr(transformers, model_cls)(config).float().eval()
  with torch.no_grad():  # random norms and biases, so parity checks see them
    for param in model.parameters():
      if param.ndim == 1:
        param.add_(0.1 * torch.randn_like(param))
  return model


def _published_tensors(name: str, model) -> dict:
  """The model's tensors under the names (and only those) the published files have."""
  _, _, layout = FIXTURES[name]
  tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
  if layout == "bare_tied":  # BLOOMZ: BloomModel names, head tied to the embedding
    return {k.removeprefix("transformer."): v for k, v in tensors.items() if k != "lm_head.weight"}
  if layout in ("tied", "sharded"):
    tied = {"lm_head.weight", "lm_head.decoder.weight"} if model.config.tie_word_embeddings else set()
    return {k: v for k, v in tensors.items() if k not in tied}
  if layout == "shared_only":  # mT5 stacks' embed_tokens are the shared embedding
    return {k: v for k, v in tensors.items() if not k.endswith("embed_tokens.weight")}
  if layout == "stack_embeddings_only":  # what de-duplication may keep instead of shared
    return {k: v for k, v in tensors.items()
            if k not in ("shared.weight", "decoder.embed_tokens.weight")}
  if layout == "sentence_transformers":  # older saves keep the position_ids buffer
    import torch
    positions = model.config.max_position_embeddings
    tensors["embeddings.position_ids"] = torch.arange(positions, dtype=torch.long)[None]
    return tensors
  raise ValueError(f"unknown layout {layout!r}")


def _save(tensors: dict, out: pathlib.Path, sharded: bool) -> None:
  from safetensors.torch import save_file
  if not sharded:
    save_file(tensors, out / "model.safetensors", metadata={"format": "pt"})
    return
  names = sorted(tensors)
  halves = [names[:len(names) // 2], names[len(names) // 2:]]
  weight_map = {}
  for i, part in enumerate(halves):
    file = f"model-{i + 1:05d}-of-{len(halves):05d}.safetensors"
    save_file({k: tensors[k] for k in part}, out / file, metadata={"format": "pt"})
    weight_map.update({k: file for k in part})
  total = sum(t.numel() * t.element_size() for t in tensors.values())
  index = {"metadata": {"total_size": total}, "weight_map": weight_map}
  (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _write_tokenizer(config: dict, out: pathlib.Path) -> None:
  """A word-level tokenizer.json over the shrunk vocabulary: ids only, for jobs to run."""
  import tokenizers
  specials = {t: i for t, i in SPECIAL_TOKENS.get(config["model_type"], {}).items()
              if i < config["vocab_size"]}
  taken = set(specials.values())
  vocab = dict(specials)
  vocab.update({f"w{i}": i for i in range(config["vocab_size"]) if i not in taken})
  unk = next((t for t in specials if "unk" in t.lower()), None)
  if unk is None:
    unk = "w3"
  tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token=unk))
  tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tokenizer.add_special_tokens(list(specials))
  tokenizer.save(str(out / "tokenizer.json"))


def write_checkpoint(name: str, out_dir, seed: int = 0) -> pathlib.Path:
  """Writes the tiny published-layout checkpoint `name` (a key of FIXTURES) into out_dir."""
  directory, _, layout = FIXTURES[name]
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  shutil.copyfile(PUBLISHED / directory / "config.json", out / "config.json")  # byte for byte
  model = _torch_model(name, out, seed)
  _save(_published_tensors(name, model), out, sharded=layout == "sharded")
  _write_tokenizer(published_config(name), out)
  return out
