"""The cross-encoder experiment's packing (train/cross_rerank.py): the word-piece table cut to
the pieces in use must leave the model computing what the whole model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from train import cross_rerank as cx


def test_a_model_with_the_compact_table_reads_remapped_pieces_as_the_whole_model_reads_them(
        tmp_path):
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    from index.embed import packaged_model_dir

    model_dir = packaged_model_dir()
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    pair = tok.encode("who handed out the best actress trophy?",
                      "Keanu Reeves, who presented the best actress award, wore black.")
    other = tok.encode("a sentence the pair never uses")
    weights, used, remap = cx.compact_vocabulary(
        load_file(str(model_dir / "model.safetensors")), [pair.ids, other.ids])
    assert len(used) == len(set(pair.ids) | set(other.ids))
    assert weights["embeddings.word_embeddings.weight"].shape[0] == len(used)
    save_file(weights, str(tmp_path / "base.safetensors"))
    compact = cx._model(tmp_path / "base.safetensors", len(used), 6, "cpu").eval()
    whole = transformers.BertModel.from_pretrained(str(model_dir)).eval()

    def hidden(model, ids):
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids]),
                         token_type_ids=torch.tensor([pair.type_ids]),
                         attention_mask=torch.ones(1, len(ids), dtype=torch.long)
                         ).last_hidden_state[0].numpy()

    want = hidden(whole, pair.ids)
    got = hidden(compact.bert, remap[pair.ids].tolist())
    np.testing.assert_allclose(got, want, atol=1e-4)
    # The ids really were moved: read unmapped, the compact table gives other vectors.
    assert remap[pair.ids].tolist() != pair.ids


def test_a_model_is_refused_weights_that_do_not_fit_it(tmp_path):
    from safetensors.numpy import save_file

    save_file({"encoder.layer.0.nonsense.weight": np.zeros((2, 2), np.float32)},
              str(tmp_path / "base.safetensors"))
    with pytest.raises(RuntimeError, match="does not fit BERT"):
        cx._model(tmp_path / "base.safetensors", 10, 1, "cpu")


def test_quotes_pass_over_windows_that_overlap_one_already_quoted():
    row = {"windows": [("s", 0, 0, 4), ("s", 1, 2, 6), ("s", 2, 7, 11), ("t", 3, 0, 4),
                       ("s", 4, 12, 16)]}
    score = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert cx._quotes(row, score) == [0, 2, 3]
    assert cx._quotes(row, score, n=1) == [0]


def test_a_model_can_start_from_the_shipped_embedders_layers(tmp_path):
    from safetensors.numpy import load_file, save_file

    from index.embed import packaged_model_dir

    weights, used, _ = cx.compact_vocabulary(
        load_file(str(packaged_model_dir() / "model.safetensors")), [[0, 101, 102]])
    save_file(weights, str(tmp_path / "base.safetensors"))
    tuned_file = cx.REPO / "index" / "models" / "minilm-dossier.safetensors"
    tuned = load_file(str(tuned_file))
    key = "encoder.layer.1.attention.self.query.weight"
    model = cx._model(tmp_path / "base.safetensors", len(used), 2, "cpu", tuned=tuned_file)
    got = model.bert.encoder.layer[1].attention.self.query.weight.detach().numpy()
    np.testing.assert_array_equal(got, tuned[key].astype(np.float32))
    assert not np.array_equal(tuned[key].astype(np.float32), weights[key])  # it was tuned
    plain = cx._model(tmp_path / "base.safetensors", len(used), 2, "cpu")
    np.testing.assert_array_equal(
        plain.bert.encoder.layer[1].attention.self.query.weight.detach().numpy(), weights[key])
