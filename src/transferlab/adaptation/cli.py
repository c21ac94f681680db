"""``transferlab adapt ...``: adaptation methods that make a new encoder (thin: parse, read, call, print)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..cli_common import err, escape, friendly
from ..errors import ConfigError

adapt_app = typer.Typer(no_args_is_help=True, help="Adapt a pretrained encoder to your text before training on it "
                        "(domain-adaptive pretraining); the result is an encoder folder that --encoder accepts.")


def aligned(values: list[str], n: int, flag: str) -> list[str]:
    """One value for every --data, or one value for all of them."""
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ConfigError(f"{len(values)} {flag} values for {n} --data sources",
                          hint=f"give one {flag} for all sources, or one per --data, in the same order")
    return values


def read_texts(sources: list[str], text_cols: list[str], splits: list[str], parts: list[str], *,
               skip_bad_rows: bool, seed: int) -> tuple[list[str], list[dict]]:
    """The texts of the chosen parts of each source (several columns joined by a newline), and what was read."""
    from ..data.loading import needed_columns
    from ..data.readers import read_examples
    from ..data.splits import SPLITS, split_examples
    from ..encoders.zoo import sha256_file

    texts: list[str] = []
    record = []
    n = len(sources)
    for path, cols, split, chosen in zip(sources, aligned(text_cols, n, "--text-col"), aligned(splits, n, "--split"),
                                         aligned(parts, n, "--parts")):
        columns = [c.strip() for c in cols.split(",") if c.strip()]
        wanted = [p.strip() for p in chosen.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in SPLITS]
        if not columns or not wanted or unknown:
            raise ConfigError(f"--text-col {cols!r} / --parts {chosen!r} for {path} name nothing usable",
                              hint=f"columns like body or title,body; parts from {', '.join(SPLITS)}")
        examples, report = read_examples(path, text_col=columns[0], label_col=None,
                                         keep_cols=sorted(set(columns[1:]) | set(needed_columns(split))),
                                         skip_bad_rows=skip_bad_rows, allow_empty_text=True)
        if report.skipped:
            err.print(f"[yellow]warning:[/] {escape(report.summary())}", highlight=False, soft_wrap=True)
        split_parts = split_examples(examples, split, seed=seed)
        got, empty = 0, 0
        for part in wanted:
            ex = split_parts[part]
            for i, first in enumerate(ex.texts):
                text = "\n".join(s for s in [first, *(str(ex.columns[c][i] or "") for c in columns[1:])] if s.strip())
                if text.strip():
                    texts.append(text)
                    got += 1
                else:
                    empty += 1
        entry = {"source": str(path), "text_col": columns, "split": split, "parts": wanted, "n_texts": got,
                 "n_empty_skipped": empty, "n_bad_rows_skipped": len(report.skipped)}
        if Path(path).is_file():
            entry["sha256"] = sha256_file(Path(path))
        record.append(entry)
        err.print(escape(f"{path}: {got} text(s) from {', '.join(wanted)} ({split} split)"
                         + (f", {empty} empty skipped" if empty else "")), highlight=False)
    return texts, record


@adapt_app.command("mlm")
@friendly
def mlm_cmd(
    encoder: str = typer.Option(..., help="a transformer: minilm, mpnet, a local folder or a hub id"),
    data: List[str] = typer.Option(..., "--data", help="unlabelled text: CSV/TSV/JSONL or a dataset; repeatable"),
    text_col: List[str] = typer.Option(["text"], "--text-col", help="column(s) holding the text; several joined by "
                                       "a newline (title,body); one for all --data or one per --data"),
    split: List[str] = typer.Option(["none"], help="split spec of each source (as in `train`: seed, time:COL:D1,D2,"
                                    " column:COL, none...); one for all or one per --data"),
    parts: List[str] = typer.Option(["train"], help="which parts of the split to read (train, validation, test; "
                                    "comma-separated); never give the text you will test on"),
    out_dir: Path = typer.Option(..., "--out", help="new folder for the adapted encoder"),
    epochs: int = typer.Option(1), batch_size: int = typer.Option(16), lr: float = typer.Option(5e-5),
    max_length: int = typer.Option(256, help="subword tokens per window; longer texts are cut into several"),
    mlm_probability: float = typer.Option(0.15, help="share of tokens (whole words) chosen for prediction"),
    whole_word: bool = typer.Option(True, "--whole-word/--subword", help="mask whole words or single subwords"),
    validation_fraction: float = typer.Option(0.05, help="share of the texts held out to measure perplexity"),
    max_texts: Optional[int] = typer.Option(None, help="use at most this many texts (a random draw)"),
    patience: Optional[int] = typer.Option(None, help="stop after this many epochs without a lower validation loss"),
    head_warmup: int = typer.Option(0, help="first train only the masked-LM head for this many steps, the encoder "
                                            "frozen (worth it when the head is new, as for the offline checkpoints)"),
    seed: int = typer.Option(13), device: str = typer.Option("auto"),
    precision: str = typer.Option("auto", help="auto (bf16 on a GPU that has it) | fp32 | bf16 | fp16"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="skip rows that do not parse, and report them"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="let the encoder run code shipped "
                                           "with it (only for a folder you trust)"),
):
    """Continue masked-language-model training of ENCODER on your text (domain-adaptive pretraining)."""
    import numpy as np

    from .dapt import adapt_mlm

    texts, sources = read_texts(data, text_col, split, parts, skip_bad_rows=skip_bad_rows, seed=seed)
    if max_texts is not None and len(texts) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False))
        texts = [texts[i] for i in keep]
        sources.append({"max_texts": max_texts})
    record = adapt_mlm(encoder, texts, out_dir, validation_fraction=validation_fraction, epochs=epochs,
                       batch_size=batch_size, lr=lr, max_length=max_length, probability=mlm_probability,
                       whole_word=whole_word, patience=patience, head_warmup=head_warmup, seed=seed, device=device,
                       precision=precision, sources=sources, trust_remote_code=trust_remote_code)
    v = record["validation"]
    change = (f"; validation perplexity {v['before']['perplexity']:.1f} -> {v['after']['perplexity']:.1f}"
              if v["before"] and v["after"] else "")
    err.print(escape(f"adapted {encoder} on {record['data']['n_texts']} text(s) ({record['data']['n_windows']} "
                     f"window(s)) in {record['seconds']:.0f}s{change}; MLM head: {record['base']['head']}; saved to "
                     f"{out_dir} (use it as --encoder {out_dir})"), highlight=False, soft_wrap=True)


def distill_cmd(
    teacher: List[Path] = typer.Option(..., "--teacher", help="a model folder from `transferlab train` (any family); "
                                       "repeat for an ensemble (softened probabilities averaged)"),
    student_encoder: str = typer.Option("glove-50d", "--student-encoder", help="the student's encoder (any family)"),
    student_head: Optional[str] = typer.Option(None, "--student-head", help="the student's head (cnn, bigru, dan, "
                                               "logreg, linear...; default the family's)"),
    student_strategy: Optional[str] = typer.Option(None, "--student-strategy", help="trainable|frozen (word vectors),"
                                                   " finetune|frozen|gradual|lora (transformers)"),
    data: str = typer.Option(..., "--data", help="labelled data (CSV/TSV/JSONL or a dataset), split as in `train`"),
    text_col: str = typer.Option("text", "--text-col"), label_col: str = typer.Option("label", "--label-col"),
    pair_col: Optional[str] = typer.Option(None, "--pair-col"),
    split: str = typer.Option("stratified", help="as in `train`: seed | stratified | column:NAME | time:NAME..."),
    max_train: Optional[int] = typer.Option(None, help="subsample the labelled training part to N rows"),
    unlabelled: Optional[List[str]] = typer.Option(None, "--unlabelled", help="more text without labels for the "
                                                   "teacher to label (CSV/TSV/JSONL); repeatable; any text that is "
                                                   "also validation or test text is left out and counted"),
    unlabelled_text_col: Optional[str] = typer.Option(None, "--unlabelled-text-col", help="its text column "
                                                      "(default --text-col)"),
    augment: int = typer.Option(0, "--augment", help="add K perturbed copies of each training text (words dropped, "
                                "windows kept; Tang et al. 2019) for the teacher to label: a transfer set where there "
                                "is no unlabelled text"),
    temperature: float = typer.Option(2.0, help="softening temperature of the teacher's probabilities"),
    alpha: float = typer.Option(0.5, help="weight of the teacher's soft targets beside the hard labels (0..1)"),
    epochs: Optional[int] = typer.Option(None), lr: Optional[float] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None), max_length: Optional[int] = typer.Option(None),
    patience: Optional[int] = typer.Option(3, help="early stopping on validation; 0 = none"),
    seed: int = typer.Option(13), device: str = typer.Option("auto"),
    evaluate_test: bool = typer.Option(False, "--test/--no-test", help="also evaluate the student and each teacher "
                                       "on the test part (report.json, teachers.json)"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows"),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="let the teacher folders run code "
                                           "shipped with them (only folders you trust)"),
    out_dir: Path = typer.Option(..., "--out", help="run directory for the student: model, metrics, curves"),
):
    """Train a student model from one or more teachers' softened probabilities plus the labels (distillation)."""
    import json

    from ..cli import _data_spec, _evaluate_and_write, _report_reading
    from ..data.loading import load_parts
    from ..data.readers import read_examples
    from ..models.classifier import TextClassifier

    teachers = [TextClassifier.load(t, device=device, trust_remote_code=trust_remote_code) for t in teacher]
    spec = _data_spec(data, text_col, label_col, pair_col, None, split, max_train, None, skip_bad_rows)
    parts, report = load_parts(spec, seed=seed)
    _report_reading(report)
    extra_texts: list[str] = []
    for path in unlabelled or []:
        ex, rep = read_examples(path, text_col=unlabelled_text_col or text_col, label_col=None,
                                skip_bad_rows=skip_bad_rows)
        _report_reading(rep)
        extra_texts += ex.texts
    if augment:
        from ..data.augment import transfer_set

        extra_texts += transfer_set(parts["train"].texts, augment, seed=seed)
    test_texts = set(parts["test"].texts)
    kept = [t for t in extra_texts if t not in test_texts]
    if len(kept) < len(extra_texts):
        err.print(escape(f"{len(extra_texts) - len(kept)} unlabelled text(s) are also test texts: left out"),
                  highlight=False)
    student = TextClassifier(encoder=student_encoder, head=student_head, strategy=student_strategy,
                             max_length=max_length, epochs=epochs, lr=lr, batch_size=batch_size,
                             patience=patience or None, seed=seed, device=device, kd_temperature=temperature,
                             kd_alpha=alpha)
    validation = parts["validation"] if len(parts["validation"]) else None
    err.print(f"data: train {len(parts['train'])}, validation {len(parts['validation'])}, test {len(parts['test'])}, "
              f"unlabelled {len(kept)}; teachers: {len(teachers)}")
    student.fit(parts["train"], validation=validation, out_dir=out_dir, teacher=teachers, unlabelled=kept or None,
                data_info={"data": spec.to_dict(), "teachers": [str(t) for t in teacher],
                           "unlabelled_sources": list(unlabelled or []), "augment_copies": augment,
                           "unlabelled_left_out_as_test": len(extra_texts) - len(kept)})
    info = student.fit_info_["distillation"]
    err.print(escape(f"student trained in {student.fit_info_['train_seconds']:.1f}s on {len(parts['train'])} "
                     f"labelled + {info['n_unlabelled']} unlabelled text(s) (T={temperature}, alpha={alpha}); "
                     f"saved to {out_dir}"), highlight=False)
    if evaluate_test and len(parts["test"]):
        mine = _evaluate_and_write(student, parts["test"], out_dir / "report.json")
        theirs = {str(path): _evaluate_and_write(t, parts["test"], out_dir / "teachers" / f"{i}.json")
                  for i, (path, t) in enumerate(zip(teacher, teachers))}
        summary = {"student": {"accuracy": mine["accuracy"], "docs_per_second": mine["docs_per_second"]},
                   "teachers": {k: {"accuracy": v["accuracy"], "docs_per_second": v["docs_per_second"]}
                                for k, v in theirs.items()}}
        (out_dir / "teachers.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        for name, r in [("student", summary["student"]), *summary["teachers"].items()]:
            err.print(escape(f"{name}: test accuracy {r['accuracy']:.4f}, {r['docs_per_second']} docs/s"),
                      highlight=False)
