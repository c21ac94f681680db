"""Run configuration: what model to build and how to train it.  The CLI only maps flags onto these."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .errors import ConfigError
from .encoders.zoo import TRANSFORMER, WORD_VECTORS, family_of

FROZEN_FEATURES = "frozen-features"  # a transformer/sentence encoder used frozen: features + head
CLASSIFICATION, TOKENS = "classification", "token-classification"
STRATEGIES = {WORD_VECTORS: ("trainable", "frozen"),
              TRANSFORMER: ("finetune", "frozen", "gradual", "lora", "contrastive")}
# (default head, default max_length) per task and family; max_length counts words for word vectors, subword
# tokens (one window) for transformers
DEFAULTS = {CLASSIFICATION: {WORD_VECTORS: ("cnn", 400), FROZEN_FEATURES: ("logreg", None),
                             TRANSFORMER: ("linear", 256)},
            TOKENS: {WORD_VECTORS: ("bilstm", 10_000), FROZEN_FEATURES: ("linear", 128), TRANSFORMER: ("linear", 128)}}
TRUNCATIONS = ("head", "head+tail", "chunks")


@dataclass
class ModelConfig:
    encoder: str = "glove-50d"
    head: str | None = None
    strategy: str | None = None
    max_length: int | None = None
    truncation: str = "head"
    pooling: str = "mean"
    hidden: int | None = None
    dropout: float = 0.2
    min_count: int = 2
    head_options: dict = field(default_factory=dict)
    indomain_dim: int = 100
    lora_r: int = 8
    lora_alpha: int = 16
    layer_decay: float = 0.85
    # strategy "contrastive" (few-shot, the SetFit idea): the encoder is tuned on label pairs, then frozen
    contrastive_epochs: int = 1
    contrastive_lr: float = 2e-5
    contrastive_batch_size: int = 16
    contrastive_pairs: int | None = None  # cap on pairs; default 40 per labelled text
    # how a frozen-features logreg head is fitted: "adamw" (the training loop: epochs, curves, early stopping on
    # the standardised features) or "lbfgs" (scikit-learn's L2 logistic regression fitted to convergence on the
    # raw embeddings, SetFit's head); default lbfgs for the contrastive strategy, adamw otherwise
    head_solver: str | None = None
    head_c: float = 1.0  # inverse L2 strength of the lbfgs head (scikit-learn's C)
    # token tagging: a CRF over the per-word scores; character-CNN word features (word vectors); how many subword
    # tokens of context overlap when a long sentence is split into windows (default a quarter of max_length)
    crf: bool = False
    char_cnn: bool = True
    stride: int | None = None
    # token tagging with a transformer: append a learned casing embedding of each word (lower, Initial, ALL, mixed,
    # digits...) to its state; gives an uncased encoder (MiniLM, MPNet here) back the capitalisation it never sees
    case_features: bool = False
    # token tagging with a transformer: up to this many subword tokens of the neighbouring sentences of the same
    # document on each side, as context that is read but never labelled (document-level features, FLERT:
    # Schweter & Akbik 2020); 0 = each sentence alone
    context: int = 0
    # the hybrid family: this many latent (SVD) dimensions of word 1-2-gram TF-IDF, fitted on the training texts,
    # appended to a frozen sentence encoder's embedding (encoders/tfidf.py); 0 = none
    tfidf_dim: int = 0
    # the hybrid family, stacked: the out-of-fold decision score of a TF-IDF + logistic regression model instead
    # (every n-gram kept, a few MB; encoders/tfidf.TfidfStack)
    tfidf_stack: bool = False
    # fine-tuned transformers: the attention-probability dropout while training (None = the checkpoint's own, 0.1 for
    # MiniLM and MPNet). With dropout, PyTorch's CPU attention leaves its fused kernel and draws a mask over every
    # L x L probability matrix: 0 makes a CPU training step 1.6x faster at 256 tokens and 2.6-2.9x at 512
    # (benchmarks/speed/probes/attention_dropout.py); the hidden-state dropout is kept
    attention_dropout: float | None = None
    # sequential transfer: start the encoder from an earlier model's (a folder from `train`), head replaced
    init_from: str | None = None
    trust_remote_code: bool = False

    @property
    def family(self) -> str:
        fam = family_of(self.encoder)
        return FROZEN_FEATURES if fam == TRANSFORMER and self.strategy in ("frozen", "contrastive") else fam

    def resolve_defaults(self, task: str = CLASSIFICATION) -> "ModelConfig":
        """Fill family defaults and reject combinations that cannot work, before any heavy work."""
        from .heads import registry

        base = family_of(self.encoder)
        self.strategy = self.strategy or ("trainable" if base == WORD_VECTORS else "finetune")
        strategies = STRATEGIES[base] if task == CLASSIFICATION else tuple(
            s for s in STRATEGIES[base] if s != "contrastive")
        if self.strategy not in strategies:
            raise ConfigError(f"strategy {self.strategy!r} does not apply to {base} encoder {self.encoder!r}"
                              + ("" if task == CLASSIFICATION else f" for {task}"),
                              hint=f"choose one of {', '.join(strategies)}")
        fam = self.family
        head, length = DEFAULTS[task][fam]
        self.head = self.head or head
        registry.get(task, self.head, fam)  # a head that does not fit is a ConfigError naming the ones that do
        self.max_length = self.max_length or length
        if self.crf and task != TOKENS:
            raise ConfigError("a CRF layer scores tag sequences: it applies to token tagging only",
                              hint="drop --crf, or train with --task ner")
        if self.stride is not None and not 0 <= self.stride < self.max_length // 2:
            raise ConfigError(f"stride {self.stride} must be at least 0 and under half of max_length "
                              f"({self.max_length})", hint="e.g. --stride 32 with --max-length 128")
        if self.context:
            if task != TOKENS or fam == WORD_VECTORS:
                raise ConfigError("document context applies to token tagging with a transformer encoder",
                                  hint="drop --context, or train a transformer tagger (--task ner)")
            if self.context < 0 or 2 * self.context >= self.max_length:
                raise ConfigError(f"context {self.context} must be at least 0 and under half of max_length "
                                  f"({self.max_length}): the sentence itself needs room",
                                  hint="e.g. --context 32 with --max-length 128")
        if self.tfidf_dim and self.tfidf_stack:
            raise ConfigError("--tfidf-dim and --tfidf-stack are two kinds of hybrid: choose one")
        if self.tfidf_dim or self.tfidf_stack:
            if self.tfidf_dim < 0 or fam != FROZEN_FEATURES or task != CLASSIFICATION:
                raise ConfigError("TF-IDF features are appended to a frozen sentence encoder's embedding, for text "
                                  "classification", hint="use --strategy frozen with a transformer encoder, or drop "
                                  "--tfidf-dim/--tfidf-stack")
        if self.attention_dropout is not None:
            if fam != TRANSFORMER:
                raise ConfigError("attention dropout applies to a transformer that is trained (--strategy finetune, "
                                  f"gradual or lora), not to a {fam} model", hint="drop --attention-dropout")
            if not 0.0 <= self.attention_dropout < 1.0:
                raise ConfigError(f"attention dropout must be in [0, 1), got {self.attention_dropout}",
                                  hint="e.g. --attention-dropout 0 (none) or 0.1")
        self.head_solver = self.head_solver or ("lbfgs" if self.strategy == "contrastive" else "adamw")
        if self.head_solver not in ("adamw", "lbfgs"):
            raise ConfigError(f"head solver {self.head_solver!r} is unknown", hint="adamw or lbfgs")
        if self.head_solver == "lbfgs" and (fam != FROZEN_FEATURES or self.head != "logreg"):
            raise ConfigError(f"the lbfgs head solver fits a logistic-regression head over frozen features, not a "
                              f"{self.head} head of a {fam} model", hint="use --head-solver adamw")
        if not self.head_c > 0:
            raise ConfigError(f"head C must be positive, got {self.head_c}", hint="e.g. --head-c 1.0")
        if self.truncation not in TRUNCATIONS or (self.truncation == "chunks" and fam != FROZEN_FEATURES):
            raise ConfigError(f"truncation {self.truncation!r} is not available for {fam} models",
                              hint="head and head+tail work everywhere; chunks only for frozen encoders")
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling {self.pooling!r} is unknown", hint="mean or cls")
        return self


@dataclass
class TrainConfig:
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    patience: int | None = 3
    metric: str = "macro_f1"
    seed: int = 13
    device: str = "auto"
    precision: str = "auto"
    eval_batch_size: int | None = None
    validation_fraction: float = 0.1
    # training batches of similar lengths (shuffled within windows of 50 batches, the windows sorted by length, the
    # batches in random order): less padding per batch, the same examples per epoch (training/trainer.py)
    length_buckets: bool = False
    # skewed labels (training/imbalance.py)
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weight: str | dict | None = None
    label_smoothing: float = 0.0
    sampler: str | None = None
    # distillation (fit(..., teacher=...); tasks/distill.py): the teacher's softening temperature and the soft
    # term's weight beside the hard labels
    kd_temperature: float = 2.0
    kd_alpha: float = 0.5
    # decisions with few positives: calibration and thresholds fitted on the out-of-fold scores of a stratified
    # K-fold cross-validation over training + validation data, then the model refitted on all of it
    cv_folds: int | None = None
    # multi-task models (models/multitask.py): how the task of each batch is drawn: proportional | round-robin |
    # temperature:T (task probability proportional to its size ** (1/T))
    task_sampling: str = "proportional"
    # decisions and scores, fitted on validation data after training (evaluation/decision.py)
    calibration: str | None = None
    threshold: str | float | None = None
    positive: str | None = None

    def resolve_defaults(self, model: ModelConfig, task: str = CLASSIFICATION) -> "TrainConfig":
        fam = model.family
        lora = model.strategy == "lora"
        epochs, batch, lr = {
            WORD_VECTORS: (10, 32, 2e-3),
            FROZEN_FEATURES: (100, 64, 3e-3),
            TRANSFORMER: (3, 16, 3e-4 if lora else 4e-5),
        }[fam] if task == CLASSIFICATION else {
            WORD_VECTORS: (20, 16, 2e-3),
            FROZEN_FEATURES: (30, 32, 2e-3),
            TRANSFORMER: (3, 16, 5e-4 if lora else 5e-5),
        }[fam]
        if task == TOKENS and self.metric == "macro_f1":  # the default metric means the task's main one
            self.metric = "f1"
        self.epochs = self.epochs or epochs
        self.batch_size = self.batch_size or batch
        self.lr = self.lr or lr
        self.eval_batch_size = self.eval_batch_size or max(64, self.batch_size * 2)
        if fam == FROZEN_FEATURES and task == CLASSIFICATION and self.patience is not None:
            # A head over fixed features costs well under a second per epoch and its validation metric is noisy
            # from epoch to epoch; on IMDB/MiniLM patience 10 stopped at epoch 38 while validation accuracy kept
            # rising to epoch 81 (benchmarks/core-imdb/results.md), so frozen heads get a long patience.
            self.patience = max(self.patience, 30)
        from .training.imbalance import check_options, parse_class_weight

        self.sampler = None if self.sampler in (None, "", "none") else self.sampler
        check_options(loss=self.loss, focal_gamma=self.focal_gamma, label_smoothing=self.label_smoothing,
                      sampler=self.sampler)
        self.class_weight = parse_class_weight(self.class_weight)
        if model.head_solver == "lbfgs" and (self.loss != "ce" or self.label_smoothing or self.sampler):
            raise ConfigError("the lbfgs head solver takes class weights only, not focal loss, label smoothing or "
                              "a sampler", hint="drop those options or use --head-solver adamw")
        from .evaluation.decision import CALIBRATIONS, parse_threshold

        self.calibration = None if self.calibration in (None, "", "none") else self.calibration
        if self.calibration not in CALIBRATIONS:
            raise ConfigError(f"calibration {self.calibration!r} is unknown", hint="temperature, isotonic or none")
        parse_threshold(self.threshold)  # fails early on a malformed rule
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ConfigError(f"precision {self.precision!r} is unknown", hint="auto, fp32, bf16 or fp16")
        return self


def split_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """Route flat keyword arguments (the scikit-learn style) to the two configs; reject unknown ones."""
    model_keys = {f.name for f in fields(ModelConfig)}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(kwargs) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}",
                          hint=f"valid: {', '.join(sorted(model_keys | train_keys))}")
    return ({k: v for k, v in kwargs.items() if k in model_keys}, {k: v for k, v in kwargs.items() if k in train_keys})
