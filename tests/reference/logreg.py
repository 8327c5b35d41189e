"""The reference the head is measured against: scikit-learn's multinomial LogisticRegression on
the same backbone features and the same split, features standardised on the training split and
C chosen by stratified 5-fold cross-validation on the training split only (the validation split is
touched once, to score). Independent of webtune's training code: only the features come from it.

    python3 tests/reference/logreg.py FEATURES.csv

FEATURES.csv has one row per image, `split,class,f0,f1,...` with split `train` or `val` (the
`features` example writes it). Prints one JSON object: accuracy, correct, n, C, seconds.
Needs numpy and scikit-learn (`python3 -m pip install numpy scikit-learn`).
"""

import json
import os
import sys
import time

# One BLAS thread: these fits are small (hundreds of rows), and a thread pool per core on a busy
# machine made the search a hundred times slower (8 minutes instead of seconds on 2 shared cores).
for variable in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"]:
    os.environ.setdefault(variable, "1")

try:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError as e:  # the Rust test turns this exit code into its instruction
    sys.stderr.write(f"{e}: install the reference's dependencies with `python3 -m pip install numpy scikit-learn`\n")
    sys.exit(3)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    split = np.loadtxt(sys.argv[1], delimiter=",", usecols=0, dtype=str)
    table = np.loadtxt(sys.argv[1], delimiter=",", converters={0: lambda s: 0.0})
    y, x = table[:, 1].astype(int), table[:, 2:]
    train, val = split == "train", split == "val"
    start = time.perf_counter()
    fewest = np.bincount(y[train]).min()
    folds = StratifiedKFold(n_splits=int(min(5, fewest)), shuffle=True, random_state=0)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        {"logisticregression__C": np.logspace(-4, 2, 7)},
        cv=folds,
        n_jobs=1,
    )
    search.fit(x[train], y[train])
    correct = int((search.predict(x[val]) == y[val]).sum())
    n = int(val.sum())
    print(json.dumps({
        "accuracy": correct / n if n else None,
        "correct": correct,
        "n": n,
        "C": float(search.best_params_["logisticregression__C"]),
        "seconds": time.perf_counter() - start,
    }))


if __name__ == "__main__":
    main()
