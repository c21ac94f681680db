"""Domain-adaptive pretraining (adaptation/dapt.py): the MLM head tied to the embeddings, whole-word masking, the
one loop lowering the masked-LM loss, the adapted folder used as an encoder, and `transferlab adapt mlm`."""

import json

import pytest
import torch
from typer.testing import CliRunner

from transferlab.adaptation.dapt import HEAD_FILE, MaskedBatches, adapt_mlm, load_mlm, texts_digest
from transferlab.cli import app
from transferlab.encoders.zoo import resolve, weight_files
from transferlab.errors import ConfigError, DataError

runner = CliRunner()

TRAIN = [f"A heap overflow in the {w} parser lets a crafted file write past the end of the buffer." for w in
         ("image", "font", "archive", "header", "packet", "config")] + \
        [f"Fix a use-after-free when the {w} session is closed twice by the caller." for w in
         ("network", "database", "render", "audio", "upload", "login")]
VALID = ["A heap overflow in the video parser lets a crafted file write past the end of the buffer.",
         "Fix a use-after-free when the cache session is closed twice by the caller."]


@pytest.fixture(scope="module")
def minilm_mlm():
    loc = resolve("minilm").location
    return load_mlm(loc, local=True, hub={"trust_remote_code": False})


def test_the_new_mlm_head_is_tied_to_the_input_embeddings(minilm_mlm):
    tokenizer, net, head_from = minilm_mlm
    assert head_from == "new"  # the sentence-transformers checkpoint has no MLM head
    emb, dec = net.backbone.get_input_embeddings().weight, net.head_decoder().weight
    with torch.no_grad():
        before = float(emb[5, 0])
        emb[5, 0] += 1.0  # changing the embedding changes the decoder
        assert float(dec[5, 0]) == pytest.approx(before + 1.0)
        dec[7, 1] = 3.25  # and the other way round
        assert float(emb[7, 1]) == 3.25
        emb[5, 0] -= 1.0


def _word_groups(offsets, special):
    """Token positions grouped by word: a token that starts where the previous one ended continues its word."""
    groups, prev_end = [], None
    for pos, ((a, b), sp) in enumerate(zip(offsets, special)):
        if sp:
            prev_end = None
            continue
        if prev_end is not None and a == prev_end:
            groups[-1].append(pos)
        else:
            groups.append([pos])
        prev_end = b
    return groups


def test_whole_words_are_masked_together_and_padding_never_is(minilm_mlm):
    tokenizer = minilm_mlm[0]
    data = MaskedBatches(tokenizer, max_length=24, probability=0.4, seed=0)
    items = data.prepare(["unbelievably cryptographic deserialization vulnerabilities", "short one",
                          "x" * 0, "overflowing " * 40])
    assert len(items) >= 4  # the long text became several windows; the empty one none
    batch = data.collate(items)
    chosen = batch["labels"] != -100
    assert chosen.any()
    split_words = 0
    for i, it in enumerate(items):
        for group in _word_groups(it["offset_mapping"], it["special_tokens_mask"]):
            flags = {bool(chosen[i, p]) for p in group}
            assert len(flags) == 1, f"word at {group} partly masked in item {i}"
            split_words += len(group) > 1
        assert not chosen[i, len(it["input_ids"]):].any()  # padding is never a target
    assert split_words > 0  # the check above saw words of several pieces
    gold = batch["labels"][chosen]
    original = torch.tensor([it["input_ids"][p] for i, it in enumerate(items)
                             for p in range(len(it["input_ids"])) if chosen[i, p]])
    assert torch.equal(gold, original)  # labels are the original ids


def test_bad_requests_are_refused_before_any_work(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        adapt_mlm("minilm", TRAIN, tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with pytest.raises(ConfigError, match="not a transformer"):
        adapt_mlm("glove-50d", TRAIN, tmp_path / "g")
    with pytest.raises(DataError, match="at least two"):
        adapt_mlm("minilm", ["only one", "  "], tmp_path / "o")
    with pytest.raises(ConfigError, match="probability"):
        adapt_mlm("minilm", TRAIN, tmp_path / "p", probability=1.5)


def test_a_failed_run_leaves_no_half_written_encoder(tmp_path, monkeypatch):
    from transferlab.adaptation import dapt

    def broken(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dapt, "_write_folder", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        adapt_mlm("minilm", TRAIN[:4], tmp_path / "enc", validation=VALID, epochs=1, batch_size=4, max_length=16)
    assert not (tmp_path / "enc").exists()


def test_head_warmup_trains_the_new_head_alone_then_the_whole_encoder(tmp_path):
    import safetensors.torch as st

    enc = tmp_path / "warm"
    # 16-token windows of 12 texts in batches of 4: a few steps, all inside a 50-step warm-up
    rec = adapt_mlm("minilm", TRAIN, enc, validation=VALID, epochs=1, batch_size=4, max_length=16, lr=1e-3,
                    head_warmup=50, seed=0)
    assert rec["settings"]["head_warmup"] == 50 and rec["history"][-1]["step"] < 50
    base = st.load_file(resolve("minilm").location + "/model.safetensors")
    now = st.load_file(str(enc / "model.safetensors"))
    assert set(now) == set(base)  # a whole encoder: the pooler MLM training never had is carried over unchanged
    assert all(torch.equal(base[k], now[k]) for k in base)  # backbone and tied decoder untouched
    # the head alone learnt: the same fixed masks score lower (a freshly loaded head starts from another random draw,
    # so comparing its weights with the saved ones would prove nothing)
    v = rec["validation"]
    assert v["after"]["loss"] < v["before"]["loss"]
    tokenizer, fresh, _ = load_mlm(resolve("minilm").location, local=True, hub={"trust_remote_code": False})
    # the switch itself: frozen from step 0, open again at the warm-up's end
    batches = MaskedBatches(tokenizer, 16, head_warmup=2)
    batches.on_step(fresh, 0, 10)
    assert not any(p.requires_grad for p in fresh.backbone.parameters())
    assert any(p.requires_grad for n, p in fresh.head.named_parameters() if "transform" in n)
    batches.on_step(fresh, 1, 10)
    assert not any(p.requires_grad for p in fresh.backbone.parameters())
    batches.on_step(fresh, 2, 10)
    assert all(p.requires_grad for p in fresh.backbone.parameters())
    with pytest.raises(ConfigError, match="warm-up"):
        adapt_mlm("minilm", TRAIN, tmp_path / "bad", validation=VALID, head_warmup=-1)


@pytest.mark.slow
def test_adaptation_lowers_the_masked_lm_loss_and_the_folder_is_an_encoder(tmp_path):
    from safetensors.torch import load_file

    from transferlab.models.classifier import TextClassifier

    from conftest import sentiment_data

    enc = tmp_path / "minilm-security"
    rec = adapt_mlm("minilm", TRAIN * 2, enc, validation=VALID, epochs=3, batch_size=8, max_length=32, lr=2e-4,
                    seed=0, sources=[{"source": "test"}])
    v = rec["validation"]
    assert v["after"]["loss"] < v["before"]["loss"] - 1.0 and v["after"]["tokens"] > 0
    assert [h["epoch"] for h in rec["history"]] == [1, 2, 3] and (enc / "metrics.jsonl").is_file()
    assert rec["weights"] == weight_files(enc) and "model.safetensors" in rec["weights"]
    assert rec["data"]["texts_sha256"] == texts_digest(TRAIN * 2) and rec["data"]["sources"] == [{"source": "test"}]
    assert json.loads((enc / "adaptation.json").read_text())["base"]["name"] == "minilm"
    assert (enc / "1_Pooling" / "config.json").is_file()  # still a sentence-transformers model for frozen use
    # the encoder moved, and every family of command takes the folder as --encoder
    import safetensors.torch as st

    base = st.load_file(resolve("minilm").location + "/model.safetensors")
    now = st.load_file(str(enc / "model.safetensors"))
    assert any(not torch.equal(base[k], now[k]) for k in base if k in now)
    texts, labels = sentiment_data(16)
    for strategy in ("frozen", "finetune"):
        clf = TextClassifier(str(enc), strategy=strategy, epochs=1, max_length=32, batch_size=8, seed=0)
        assert len(clf.fit(texts, labels).predict(["a fine film"])) == 1
    # adapting the adapted folder again continues from its saved head
    tokenizer, net, head_from = load_mlm(str(enc), local=True, hub={"trust_remote_code": False})
    assert "earlier adaptation" in head_from
    saved = load_file(enc / HEAD_FILE)
    state = dict(net.head.named_parameters())
    assert saved and set(saved) <= set(state)  # every saved tensor is one of the head's own
    assert all(torch.equal(state[k], v) for k, v in saved.items())


@pytest.mark.slow
def test_adapt_mlm_command_reads_columns_and_parts_and_records_them(tmp_path):
    data = tmp_path / "issues.csv"
    rows = ["title,body,created_at"] + [f'"{t[:20]}","{t}",2021-0{1 + i % 6}-01' for i, t in enumerate(TRAIN)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["adapt", "mlm", "--encoder", "minilm", "--data", str(data), "--text-col", "title,body",
                              "--split", "time:created_at:2021-04-01,2021-06-01", "--parts", "train", "--epochs", "1",
                              "--max-length", "24", "--batch-size", "4", "--out", str(tmp_path / "enc")])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "enc" / "adaptation.json").read_text())
    (src,) = rec["data"]["sources"]
    assert src["parts"] == ["train"] and src["text_col"] == ["title", "body"] and len(src["sha256"]) == 64
    assert src["n_texts"] == 6  # January to March only: the later months are validation and test
    res = runner.invoke(app, ["adapt", "mlm", "--encoder", "minilm", "--data", str(data), "--data", str(data),
                              "--text-col", "a", "--text-col", "b", "--text-col", "c", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "3 --text-col values for 2 --data sources" in res.output


def test_early_stopping_keeps_the_lowest_loss_in_min_mode():
    from torch import nn

    from transferlab.training.callbacks import EarlyStopping

    class Loop:  # what the callback reads of the training loop
        def __init__(self):
            self.unwrapped, self.should_stop, self.best = nn.Linear(1, 1), False, {}

    loop, stop = Loop(), EarlyStopping("loss", patience=2, mode="min")
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 2.4], 1):
        with torch.no_grad():
            loop.unwrapped.weight.fill_(epoch)
        stop.on_epoch_end(loop, {"epoch": epoch, "val_loss": loss})
    assert loop.should_stop  # two epochs without a lower loss
    stop.on_train_end(loop)
    assert loop.best == {"epoch": 2, "val_loss": 2.0} and float(loop.unwrapped.weight.detach()) == 2.0
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("loss", 1, mode="lowest")


@pytest.mark.slow
def test_dapt_bench_adapts_once_and_compares_both_strategies_per_seed(tmp_path):
    import json

    from transferlab.bench import dapt

    from conftest import sentiment_data, write_csv

    texts, labels = sentiment_data(60)
    data = write_csv(tmp_path / "reviews.csv", zip(texts, labels))
    kw = dict(data=str(data), text_col="text", label_col="label", split="stratified:0.5,0.2,0.3", seeds=[0, 1],
              max_train=30, max_validation=12, max_test=18, max_length=16, epochs=1, mlm_epochs=1, device="cpu")
    said = []
    res = dapt.run(tmp_path / "out", announce=said.append, **kw)
    assert len(res["rows"]) == 2 * 2 * 2  # seeds x (base, adapted) x (fine-tuned, frozen)
    assert set(res["summary"]) == {"minilm|finetune", "minilm|frozen", "minilm+dapt|finetune", "minilm+dapt|frozen"}
    for strategy in ("finetune", "frozen"):
        acc = {(r["seed"], r["encoder"]): r["test_accuracy"] for r in res["rows"] if r["strategy"] == strategy}
        want = [round(100 * (acc[(s, "minilm+dapt")] - acc[(s, "minilm")]), 2) for s in (0, 1)]
        assert res["gain_points"][strategy]["per_seed"] == pytest.approx(want, abs=0.01)
    record = json.loads((tmp_path / "out" / "models" / "minilm-imdb" / "adaptation.json").read_text())
    # the adaptation read the 30 train + 12 validation texts of the split, never the 18 test ones
    assert record["data"]["n_texts"] + record["data"]["n_validation_texts"] == 30 + 12
    assert res["n"]["mlm_texts"] == record["data"]["n_texts"]
    assert (tmp_path / "out" / "dapt.png").stat().st_size > 0 and "adapted - base" in \
        (tmp_path / "out" / "results.md").read_text()
    said.clear()
    again = dapt.run(tmp_path / "out", announce=said.append, **{**kw, "seeds": [0]})
    assert any("reusing" in m for m in said)
    # a rerun keeps what the earlier run measured with the same setting (a stopped run resumes)
    assert sum("kept from an earlier run" in m for m in said) == 4
    assert again["rows"] == [r for r in res["rows"] if r["seed"] == 0]
    said.clear()
    dapt.run(tmp_path / "out", announce=said.append, **{**kw, "seeds": [0], "max_test": 15})
    assert not any("kept from an earlier run" in m for m in said)  # another test draw: measured again
