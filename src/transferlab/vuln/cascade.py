"""The two-stage cascade: security-relevant? then probable vulnerability?  Both stages are TransferLab models.

Each stage's threshold is chosen on its validation part for a target recall (``recall:0.8`` by default for both)
and stored in the model; a record is flagged when it passes both.  A flagged record carries both scores, the model versions, the CVE/GHSA/CWE ids found in its text
and the sentences that weighed most: each sentence is left out in turn and the drop in the stage-2 score is its
weight (occlusion; model-agnostic, and it only runs for flagged records).

A cascade folder holds ``stage1/`` and ``stage2/`` (ordinary TransferLab model folders, weights hashed) and
``cascade.json`` (version, thresholds, label sources, split, held-out metrics of each stage).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.records import Examples
from ..errors import ConfigError, ModelFileError
from ..models.classifier import TextClassifier
from . import labels as L

# Recipes: how each stage can be trained (any TransferLab family).  The default is the frozen MiniLM sentence
# encoder with a logistic-regression head for both stages, with the same encoder settings: a record is encoded
# once (the embedding cache serves stage 2), so stage 2 costs almost nothing, and a saved stage is only its head
# (a few kB; the encoder is resolved again and checked by SHA-256 at load).  On the Matomo time split the GloVe
# deep averaging network reached PR-AUC 0.10 against MiniLM's 0.22 (benchmarks/vuln/NOTES.md): faster, weaker.
RECIPES: dict[str, dict] = {
    "glove-dan": {"encoder": "glove-50d", "head": "dan", "max_length": 256, "epochs": 8, "patience": 2,
                  "metric": "pr_auc", "loss": "focal", "class_weight": "auto"},
    "glove-cnn": {"encoder": "glove-50d", "head": "cnn", "max_length": 256, "epochs": 6, "patience": 2,
                  "metric": "pr_auc", "class_weight": "auto"},
    "glove-bigru": {"encoder": "glove-50d", "head": "bigru", "max_length": 256, "epochs": 5, "patience": 2,
                    "metric": "pr_auc", "class_weight": "auto"},
    "minilm-frozen": {"encoder": "minilm", "strategy": "frozen", "max_length": 128, "truncation": "head+tail",
                      "head_solver": "lbfgs", "class_weight": "auto"},
    "minilm-finetune": {"encoder": "minilm", "strategy": "finetune", "max_length": 256, "truncation": "head+tail",
                        "epochs": 2, "metric": "pr_auc", "class_weight": "auto"},
    # the setting of the fine-tuned row of benchmarks/vuln/NOTES.md (~35 CPU minutes on Matomo + FARSEC): the base
    # of the multi-task (--shared) and sequential (--stage1-init-from) comparisons
    "minilm-finetune-128": {"encoder": "minilm", "strategy": "finetune", "max_length": 128, "truncation": "head+tail",
                            "epochs": 1, "metric": "pr_auc", "class_weight": "auto"},
    # the hybrid family: the frozen MiniLM embedding and 300 latent TF-IDF dimensions, one logistic regression
    "minilm-frozen-tfidf": {"encoder": "minilm", "strategy": "frozen", "max_length": 128, "truncation": "head+tail",
                            "head_solver": "lbfgs", "class_weight": "auto", "tfidf_dim": 300},
    # the stacked hybrid: the embedding and a TF-IDF logistic regression's out-of-fold score, one logistic regression
    # (head C 0.3, chosen on stage 1's validation part: benchmarks/vuln/NOTES.md); a few MB where the SVD block
    # above carries 165 MB
    "minilm-frozen-tfidf-stack": {"encoder": "minilm", "strategy": "frozen", "max_length": 128,
                                  "truncation": "head+tail", "head_solver": "lbfgs", "head_c": 0.3,
                                  "class_weight": "auto", "tfidf_stack": True},
}
# stage 1 is the stacked hybrid since it beat the plain frozen encoder on stage 1's validation part (PR-AUC 0.346
# against 0.213, benchmarks/vuln/NOTES.md); the embedding is still computed once and serves stage 2
DEFAULT_STAGE1, DEFAULT_STAGE2 = "minilm-frozen-tfidf-stack", "minilm-frozen"
STAGES = {1: (L.SECURITY, "security-relevant"), 2: (L.VULNERABILITY, "probable vulnerability")}
SATURATED = 0.01  # an occlusion drop below this says nothing
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*#>|])")


def split_sentences(text: str, limit: int = 40) -> list[str]:
    parts = [p.strip() for p in _SENTENCE.split(text or "") if p and p.strip()]
    return [p for p in parts if len(p) > 2][:limit]


def recipe(name: str) -> dict:
    if name not in RECIPES:
        raise ConfigError(f"unknown stage recipe {name!r}", hint=f"one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def _short(sha: str | None) -> str:
    return (sha or "unsaved")[:12]


@dataclass
class Cascade:
    stage1: TextClassifier
    stage2: TextClassifier
    info: dict = field(default_factory=dict)
    # the held-out test examples of each stage, kept after training (not saved; a loaded cascade has none)
    held_out: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ identity
    @property
    def version(self) -> str:
        return self.info["version"]

    @property
    def models(self) -> dict:
        return self.info["models"]

    def threshold(self, stage: int) -> float:
        return float((self.stage1 if stage == 1 else self.stage2).decision_["threshold"]["threshold"])

    # ------------------------------------------------------------------ scoring
    def _p(self, stage: int, texts: list[str], show_progress: bool = False) -> np.ndarray:
        model = self.stage1 if stage == 1 else self.stage2
        if not texts:
            return np.zeros(0, np.float32)
        proba = model.predict_proba(texts, show_progress=show_progress)
        return proba[:, model.labels_.index(STAGES[stage][0])]

    def score(self, texts: list[str], show_progress: bool = False, p1: np.ndarray | None = None) -> dict:
        """Stage-1 score for every text (unless given as ``p1``); stage-2 score for those that pass stage 1 (NaN
        for the rest)."""
        texts = [t if t.strip() else "(empty)" for t in texts]
        if p1 is None:
            p1 = self._p(1, texts, show_progress)
        passed = p1 >= self.threshold(1)
        p2 = np.full(len(texts), np.nan, np.float32)
        idx = np.flatnonzero(passed)
        if len(idx):
            p2[idx] = self._p(2, [texts[i] for i in idx])
        flagged = passed & (np.nan_to_num(p2, nan=-1.0) >= self.threshold(2))
        return {"stage1": p1, "stage2": p2, "passed1": passed, "flagged": flagged}

    def explain(self, text: str, top: int = 3, stage: int = 2) -> list[dict]:
        """The sentences that weigh most for the stage's score: each left out in turn, its weight is the drop in
        the score (occlusion).  When the score is saturated and no sentence moves it by ``SATURATED``, each
        sentence is scored alone instead (``method`` says which)."""
        sentences = split_sentences(text)
        if len(sentences) <= 1:
            return [{"sentence": s[:400], "weight": None, "method": "whole text"} for s in sentences]
        full = float(self._p(stage, [text])[0])
        variants = [" ".join(sentences[:i] + sentences[i + 1:]) for i in range(len(sentences))]
        weights, method = full - self._p(stage, variants), "occlusion"
        if weights.max() < SATURATED:  # no single sentence moves a saturated score: rank them one by one instead
            weights, method = self._p(stage, sentences), "sentence alone"
        order = np.argsort(-weights, kind="stable")
        return [{"sentence": " ".join(sentences[i].split())[:400], "weight": round(float(weights[i]), 4),
                 "method": method} for i in order[:top] if round(float(weights[i]), 4) > 0]

    def score_records(self, rows: list[dict], show_progress: bool = False) -> list[dict]:
        """Store rows -> score rows (record_id, stage1, stage2, flagged, evidence)."""
        texts = [L.issue_text(r.get("title"), r.get("body")) for r in rows]
        s = self.score(texts, show_progress=show_progress)
        out = []
        for i, row in enumerate(rows):
            refs = row.get("refs") or row.get("references") or {}
            evidence = {"models": self.models, "ids": {k: refs.get(k, []) for k in ("cve", "ghsa", "cwe")
                                                       if refs.get(k)}}
            if s["flagged"][i]:
                evidence["sentences"] = self.explain(texts[i])
            stage2 = None if np.isnan(s["stage2"][i]) else round(float(s["stage2"][i]), 6)
            out.append({"record_id": row["id"], "stage1": round(float(s["stage1"][i]), 6), "stage2": stage2,
                        "flagged": bool(s["flagged"][i]), "evidence": evidence})
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.stage1.save(folder / "stage1")
        self.stage2.save(folder / "stage2")
        self.info.update(_identity(folder, self.stage1, self.stage2, self.info.get("recipes", {})))
        (folder / "cascade.json").write_text(json.dumps(self.info, indent=2, default=str), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, trust_remote_code: bool = False, runtime: str = "auto") -> "Cascade":
        """Load both stages; code shipped with a stage runs only with the caller's ``trust_remote_code=True``.
        ``runtime``: auto (a stage's checked ONNX export from `vuln export` when it has one), onnx or torch."""
        from ..models.backends import read_json

        folder = Path(folder)
        info = read_json(folder / "cascade.json", "this is not a cascade folder",
                         hint="train one with `transferlab vuln train --out FOLDER`")
        # each load re-checks its weights' SHA-256 and refuses a stage that asks to run code
        stage1 = TextClassifier.load(folder / "stage1", trust_remote_code=trust_remote_code, runtime=runtime)
        stage2 = TextClassifier.load(folder / "stage2", trust_remote_code=trust_remote_code, runtime=runtime)
        found = _identity(folder, stage1, stage2, info.get("recipes", {}))
        if found["version"] != info.get("version") or found["models"] != info.get("models"):
            raise ModelFileError("the stage models are not the ones this cascade.json describes "
                                 f"(version {found['version']} != {info.get('version')})", where=str(folder))
        return cls(stage1, stage2, info)


def _identity(folder: Path, stage1: TextClassifier, stage2: TextClassifier, recipes: dict) -> dict:
    models = {}
    for n, model in ((1, stage1), (2, stage2)):
        cfg = json.loads((folder / f"stage{n}" / "config.json").read_text(encoding="utf-8"))
        sha = (cfg.get("weights") or {}).get("model.safetensors")
        thr = model.decision_["threshold"]
        models[f"stage{n}"] = {"recipe": recipes.get(f"stage{n}"), "weights_sha256": sha,
                               "id": f"{recipes.get(f'stage{n}', 'model')}@{_short(sha)}",
                               "threshold": thr["threshold"], "rule": thr["rule"], "positive": thr["positive"]}
    digest = hashlib.sha256(json.dumps(models, sort_keys=True).encode()).hexdigest()
    return {"models": models, "version": f"cascade-{digest[:12]}"}


def _held_out(model: TextClassifier, examples, positive: str, proba: np.ndarray | None = None) -> dict:
    from ..evaluation.metrics import classification_report

    proba = model.predict_proba(examples) if proba is None else proba
    j = model.labels_.index(positive)
    report = classification_report(examples.labels, proba, model.labels_, multilabel=False,
                                   predictions=model.decode(proba), positive=positive)
    imb = report["imbalance"]
    at_fpr = imb.get("recall_at_fpr") or {}
    out = {"n": report["n"], "positives": imb["support"], "prevalence": round(imb["prevalence"], 5),
           "pr_auc": imb["pr_auc"], "roc_auc": report.get("roc_auc"), "recall": imb["pd"], "fpr": imb["pf"],
           "precision": imb["precision"], "f1": imb["f1"], "mcc": imb["mcc"],
           "recall_at_1pct_fpr": at_fpr.get("0.01"), "recall_at_5pct_fpr": at_fpr.get("0.05"),
           "ece": (report.get("calibration") or {}).get("ece"),
           "threshold": model.decision_["threshold"]["threshold"]}
    origins = examples.columns.get("origin")
    if origins:  # recall (or false-positive rate) per label source: where the model is weak
        pred = proba[:, j] >= model.decision_["threshold"]["threshold"]
        per = {}
        for origin in sorted(set(origins)):
            idx = [i for i, o in enumerate(origins) if o == origin]
            truth = [examples.labels[i] == positive for i in idx]
            per[origin] = {"n": len(idx), "flagged_share": round(float(np.mean(pred[idx])), 4),
                           "label": positive if all(truth) else "other" if not any(truth) else "mixed"}
        out["per_origin"] = per
    return out


def refits(recipe_name: str, refit: bool | None) -> bool:
    """Whether a stage is refitted on training + validation data (``refit``; None: the default, for recipes on a
    frozen encoder, whose head fits in seconds, so the five extra fits of the cross-validation cost little; a
    recipe whose network trains would take six times as long, and refits only when asked)."""
    return recipe(recipe_name).get("strategy") == "frozen" if refit is None else bool(refit)


def train_stage(parts: "L.Parts", stage: int, recipe_name: str, target_recall: float, seed: int = 13,
                out_dir: Path | None = None, extra=None, init_from: str | Path | None = None,
                encoder: str | None = None, refit: bool | None = False) -> tuple[TextClassifier, dict]:
    """Fit one stage on its train part (plus ``extra`` examples, e.g. triage verdicts), choose its threshold on
    validation for the target recall, and measure it on the held-out test part.  ``init_from``: sequential
    transfer, the encoder starts from a model trained on an intermediate task (a recipe whose encoder trains).
    ``encoder``: another encoder in the recipe's place (e.g. one adapted with ``transferlab adapt mlm``).
    ``refit`` (True, False, or None for :func:`refits`' default by recipe): once the recipe is fixed (it was chosen
    on the validation part), the model is refitted on training + validation data, with its threshold and
    calibration fitted on the out-of-fold scores of a 5-fold cross-validation over the same data: for stage 1 the validation period is the
    most recent labelled text, the closest to what a scan reads (benchmarks/vuln/NOTES.md measures the gain)."""
    from ..evaluation.decision import FEW_POSITIVES

    positive = STAGES[stage][0]
    refit = refits(recipe_name, refit)
    options = recipe(recipe_name)
    if init_from is not None:  # the classifier refuses what cannot carry over (a frozen encoder, another family)
        options["init_from"] = str(init_from)
    if encoder is not None:
        options["encoder"] = str(encoder)
    # few validation examples of a class (the recall or the false-positive rate of the threshold would rest on
    # them): the threshold and calibration come from out-of-fold scores of a 5-fold cross-validation over training +
    # validation data instead (the test part stays untouched)
    few = min(parts.validation.labels.count(lab) for lab in set(parts.train.labels)) < FEW_POSITIVES
    cv = few or refit
    model = TextClassifier(**options, threshold=f"recall:{target_recall}", positive=positive,
                           calibration="temperature", seed=seed, **({"cv_folds": 5} if cv else {}))
    train = _with_extra(parts.train, extra)
    started = time.perf_counter()
    model.fit(train, validation=parts.validation, out_dir=out_dir, save_model=False)
    seconds = time.perf_counter() - started
    test = _held_out(model, parts.test, positive)
    # with cross-validation the model also trained on the validation part: its figures there would be in-sample
    validation = {"cross_validation": model.decision_.get("cv"), "fitted_on": model.decision_.get("fitted_on")} \
        if cv else _held_out(model, parts.validation, positive)
    decision = ("5-fold cross-validation (a class has fewer than "
                f"{FEW_POSITIVES} validation examples)" if few else
                "5-fold cross-validation over training + validation (refit on both)" if refit else "validation part")
    return model, {"recipe": recipe_name, "target_recall": target_recall, "train_seconds": round(seconds, 1),
                   **({"init_from": str(init_from)} if init_from is not None else {}),
                   **({"encoder": str(encoder)} if encoder is not None else {}),
                   "counts": parts.counts(), "n_extra": 0 if extra is None else len(extra), "refit": cv,
                   "decision": decision,
                   "labels": parts.description, "validation": validation, "test": test}


def train_shared_stages(p1: "L.Parts", p2: "L.Parts", recipe_name: str, recalls: tuple[float, float],
                        seed: int = 13, out_dir: Path | None = None, extra: dict | None = None
                        ) -> tuple[TextClassifier, TextClassifier, dict, dict]:
    """Both stages as one two-head model (multi-task): one fine-tuned transformer shared by a stage-1 and a stage-2
    head, batches of both drawn in proportion to their size.  Each head then gets its own calibration and its
    threshold for its target recall on its own validation part, exactly as :func:`train_stage` does, and is
    measured on its held-out test part.  The heads are ordinary TextClassifiers sharing the encoder, so the
    cascade scores, saves and loads them like two models (each saved folder carries the encoder)."""
    import dataclasses

    from ..models.multitask import MultiTaskModel, TaskData

    options = recipe(recipe_name)
    if options.get("strategy") != "finetune":
        raise ConfigError(f"a shared two-head cascade fine-tunes one transformer; recipe {recipe_name!r} does not",
                          hint="use a fine-tuned recipe, e.g. --stage1 minilm-finetune --shared")
    parts = {1: p1, 2: p2}
    train = {n: _with_extra(parts[n].train, (extra or {}).get(n)) for n in (1, 2)}
    model = MultiTaskModel(**options, seed=seed, task_sampling="proportional")
    started = time.perf_counter()
    model.fit({f"stage{n}": TaskData("classification", train[n], parts[n].validation) for n in (1, 2)},
              out_dir=out_dir, save_model=False)
    seconds = time.perf_counter() - started
    heads, reports = [], []
    for n in (1, 2):
        head, positive = model.tasks_[f"stage{n}"], STAGES[n][0]
        head.train_config_ = dataclasses.replace(head.train_config_, threshold=f"recall:{recalls[n - 1]}",
                                                 positive=positive, calibration="temperature")
        val = parts[n].validation
        head.decision_ = head._fit_decision(head.train_config_, head.task_.targets(train[n]),
                                            head.backend_.prepare(val), head.task_.targets(val, strict=False))
        heads.append(head)
        reports.append({"recipe": recipe_name, "shared": "one encoder, two heads (multi-task, proportional)",
                        "target_recall": recalls[n - 1], "train_seconds": round(seconds, 1),
                        "counts": parts[n].counts(), "n_extra": len((extra or {}).get(n) or []),
                        "decision": "validation part", "labels": parts[n].description,
                        "validation": _held_out(head, val, positive), "test": _held_out(head, parts[n].test, positive)})
    return heads[0], heads[1], reports[0], reports[1]


def _with_extra(train, extra):
    """The training part, plus ``extra`` examples (triage verdicts) when there are any, each with its origin."""
    if extra is None or len(extra) == 0:
        return train
    return Examples.concat(_with_origin(train), _with_origin(extra), source=f"{train.source}+{extra.source}")


def _with_origin(ex):
    """A copy with an ``origin`` column (where each example came from), "?" where the data had none."""
    out = ex.subset(range(len(ex)))
    out.columns.setdefault("origin", ["?"] * len(ex))
    return out


def train_cascade(out: str | Path, *, data: str | Path | None = None, stage1_recipe: str = DEFAULT_STAGE1,
                  stage2_recipe: str = DEFAULT_STAGE2, stage1_recall: float = 0.8, stage2_recall: float = 0.8,
                  validation_from: str = "2018-01-01", test_from: str = "2020-01-01", farsec: bool = True,
                  max_farsec_negatives: int | None = 3000, seed: int = 13, extra: dict | None = None,
                  shared: bool = False, stage1_init_from: str | Path | None = None,
                  stage1_encoder: str | None = None, refit: bool | None = None,
                  log: Callable[[str], None] = print) -> Cascade:
    """Train both stages from the label sources (see :mod:`labels`) and save the cascade in ``out``.  ``shared``:
    one fine-tuned encoder with a head per stage (multi-task, ``stage1_recipe``) instead of two models.
    ``stage1_init_from``: stage 1's encoder starts from that model folder's (sequential transfer).
    ``stage1_encoder``: stage 1 uses this encoder instead of its recipe's (e.g. a domain-adapted one).
    ``refit``: each stage refitted on training + validation data (:func:`train_stage`); None: where its recipe's
    encoder is frozen."""
    if shared and (stage1_init_from is not None or stage1_encoder is not None):
        raise ConfigError("--shared takes its encoder from the --stage1 recipe", hint="drop --stage1-init-from "
                          "and --stage1-encoder, or --shared")
    if shared and refit:
        raise ConfigError("a shared two-head cascade fits each head's threshold on its validation part; it is not "
                          "refitted", hint="drop --refit, or --shared")
    out = Path(out)
    started = time.perf_counter()
    log(f"stage 1 data: Matomo by time (validation from {validation_from}, test from {test_from})"
        + (" + FARSEC Chromium" if farsec else ""))
    p1 = L.stage1(data, validation_from=validation_from, test_from=test_from, farsec=farsec,
                  max_farsec_negatives=max_farsec_negatives, seed=seed)
    log(f"  {p1.counts()}")

    def held(r: dict) -> None:
        t = r["test"]
        log(f"  held-out test: PR-AUC {t.get('pr_auc', float('nan')):.3f}, recall {t.get('recall', float('nan')):.3f}, "
            f"precision {t.get('precision', float('nan')):.3f}")

    if shared:
        p2 = L.stage2(data, seed=seed)
        log(f"stage 2 data: {p2.counts()}")
        log(f"stages 1 and 2: one {stage1_recipe} encoder, two heads (thresholds for recall {stage1_recall} and "
            f"{stage2_recall} on validation)")
        m1, m2, r1, r2 = train_shared_stages(p1, p2, stage1_recipe, (stage1_recall, stage2_recall), seed,
                                             out / "shared", extra)
        held(r1)
        held(r2)
        stage2_recipe = stage1_recipe
    else:
        def how(name: str, recall: float) -> str:
            return (f"refitted on training + validation, threshold for recall {recall} on 5-fold out-of-fold scores"
                    if refits(name, refit) else f"threshold for recall {recall} on validation")

        log(f"stage 1: training {stage1_recipe} ({how(stage1_recipe, stage1_recall)})")
        m1, r1 = train_stage(p1, 1, stage1_recipe, stage1_recall, seed, out / "stage1", (extra or {}).get(1),
                             init_from=stage1_init_from, encoder=stage1_encoder, refit=refit)
        held(r1)
        p2 = L.stage2(data, seed=seed)
        log(f"stage 2 data: {p2.counts()}")
        log(f"stage 2: training {stage2_recipe} ({how(stage2_recipe, stage2_recall)})")
        m2, r2 = train_stage(p2, 2, stage2_recipe, stage2_recall, seed, out / "stage2", (extra or {}).get(2),
                             refit=refit)
        held(r2)
    info = {"trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "shared_encoder": shared,
            "refit": None if shared else refit,  # as asked (None: by recipe); each stage's record says what it did
            "recipes": {"stage1": stage1_recipe, "stage2": stage2_recipe},
            "stage1": r1, "stage2": r2, "seconds": round(time.perf_counter() - started, 1),
            "data": str(L.data_dir(data))}
    cascade = Cascade(m1, m2, info, held_out={1: p1.test, 2: p2.test})
    cascade.save(out)
    log(f"saved {out} ({cascade.version})")
    return cascade


def export_cascade(source: str | Path, out: str | Path | None = None, *, quantize: str | None = None,
                   formats=("onnx",), data: str | Path | None = None, max_drop: float = 0.5, force: bool = False,
                   trust_remote_code: bool = False, log: Callable[[str], None] = print) -> Path:
    """Both stages of a cascade as ONNX graphs (runtime/onnx.py), each checked on its own validation part (stage 1:
    the Matomo validation period its cascade.json records; stage 2: the grouped validation part), so that ``vuln
    scan`` and ``vuln benchmark`` score with them.  ``out``: copy the cascade there first (the shipped cascade is
    part of the installed package and is never written to)."""
    import shutil

    from ..runtime.onnx import export_model
    from .demo import SHIPPED

    source = Path(source)
    Cascade.load(source, trust_remote_code=trust_remote_code)  # a complete, unaltered cascade before any work
    info = json.loads((source / "cascade.json").read_text(encoding="utf-8"))
    if info.get("shared_encoder"):
        raise ConfigError("a shared-encoder (multi-task) cascade cannot be exported yet", where=str(source),
                          hint="export a cascade of two models (`vuln train` without --shared)")
    if out is None:
        if source.resolve() == SHIPPED.resolve():
            raise ConfigError("the shipped cascade is part of the installed package: export a copy",
                              where=str(source), hint="--out runs/cascade-onnx, then --cascade runs/cascade-onnx")
        target = source
    else:
        target = Path(out)
        if target.exists() and any(target.iterdir()):
            raise ConfigError("the output folder is not empty", where=str(target), hint="name a new folder")
        shutil.copytree(source, target, dirs_exist_ok=True)
    split = info["stage1"]["labels"]
    parts = {1: L.stage1(data or info.get("data"), validation_from=split["validation_from"],
                         test_from=split["test_from"], farsec=split["farsec"],
                         max_farsec_negatives=split.get("max_farsec_negatives")),
             2: L.stage2(data or info.get("data"))}
    for n in (1, 2):
        log(f"stage {n}: exporting, checked on its validation part ({len(parts[n].validation)} items)")
        export_model(target / f"stage{n}", quantize=quantize, formats=formats, examples=parts[n].validation,
                     max_drop=max_drop,
                     force=force, trust_remote_code=trust_remote_code, announce=lambda m: log("  " + m))
    Cascade.load(target, trust_remote_code=trust_remote_code)  # what a scan will load, graphs and all
    return target
