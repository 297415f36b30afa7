"""The embedded demo (``make demo``): placeholder until the prediction/demo stage lands.

It will generate a small synthetic dataset with known quality scores, extract Siamese I3D
features with the embedded detector, train a CoFInAl head and score held-out videos, all
offline. Until then it says so and exits non-zero rather than pretending to work.
"""

import sys


def main() -> int:
    print("aqa demo: not available yet. It will run: synthetic videos -> aqa-extract (I3D, "
          "embedded detector) -> aqa-train (CoFInAl) -> aqa-predict on held-out videos.",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
