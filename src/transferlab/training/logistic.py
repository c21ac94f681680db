"""A linear head fitted in closed loop by scikit-learn instead of the training loop: the L2-regularised logistic
regression SetFit puts on its tuned embeddings, solved to convergence with L-BFGS.

With a few dozen labelled texts a gradient-trained head has nothing to early-stop on and its result depends on
epochs and learning rate; a regularised logistic regression has one knob (C) and a unique optimum.  The
coefficients are copied into the module's last ``nn.Linear`` so the model saves, loads, calibrates and
thresholds exactly like any other (safetensors, no pickled estimator).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from .trainer import last_linear, predict_logits


def fit_logistic_head(module: nn.Module, backend, items, targets: np.ndarray, *, C: float = 1.0,
                      weight: np.ndarray | None = None, multilabel: bool = False, device: str = "cpu",
                      batch_size: int = 64, max_iter: int = 1000) -> dict:
    """Fit the last linear layer of ``module`` as a logistic regression on the features that reach it.

    Single-label: one multinomial model (two classes: the binary model, split symmetrically over the two logits so
    that their softmax is its sigmoid).  Multi-label: one binary model per label.  ``weight`` is the class weight
    vector (per class; per label the positive-class weight for multi-label), as the training loop would use it.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    layer = last_linear(module)
    module.to(device)
    _, X = predict_logits(module, backend, items, batch_size, device, features_of=layer)
    X = X.astype(np.float64)
    n_out = layer.out_features
    W, b = np.zeros((n_out, X.shape[1])), np.zeros(n_out)
    iterations, warned = [], []

    def solve(y, class_weight):
        model = LogisticRegression(C=C, max_iter=max_iter, class_weight=class_weight)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(X, y)
        warned.extend(str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning))
        iterations.append(int(np.max(model.n_iter_)))
        return model

    if multilabel:
        for k in range(n_out):
            y = targets[:, k].astype(int)
            if y.min() == y.max():  # a label always on (or off) in training: a constant logit, no weights
                b[k] = 20.0 if y[0] else -20.0
                continue
            cw = {0: 1.0, 1: float(weight[k])} if weight is not None else None
            model = solve(y, cw)
            W[k], b[k] = model.coef_[0], model.intercept_[0]
    else:
        y = np.asarray(targets, dtype=int)
        cw = {i: float(w) for i, w in enumerate(weight)} if weight is not None else None
        model = solve(y, cw)
        if n_out == 2:
            W[0], W[1] = -model.coef_[0] / 2, model.coef_[0] / 2
            b[0], b[1] = -model.intercept_[0] / 2, model.intercept_[0] / 2
        else:
            W[model.classes_], b[model.classes_] = model.coef_, model.intercept_
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(W, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(b, dtype=layer.bias.dtype))
    return {"solver": "lbfgs", "C": C, "iterations": max(iterations, default=0),
            "converged": not warned, **({"warning": warned[0]} if warned else {})}
