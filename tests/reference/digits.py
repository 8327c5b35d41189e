"""Prints scikit-learn's bundled handwritten digits (8×8, ink 0..16; shipped inside the package,
no download) as CSV: `digit,p0,...,p63`, the first PER_CLASS images of each digit.

    python3 tests/reference/digits.py PER_CLASS
"""

import sys

try:
    import numpy as np
    from sklearn.datasets import load_digits
except ImportError as e:
    sys.stderr.write(f"{e}: install it with `python3 -m pip install numpy scikit-learn`\n")
    sys.exit(3)

per_class = int(sys.argv[1])
digits = load_digits()
for digit in range(10):
    for index in np.flatnonzero(digits.target == digit)[:per_class]:
        print(",".join([str(digit)] + [str(int(v)) for v in digits.data[index]]))
