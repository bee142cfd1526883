"""Export a trained model to SavedModel or TFLite.

Not implemented yet: this command refuses instead of writing a file that only looks like an export.
Until then, the ``.keras`` file written by ``train.py`` is the deliverable; load it with
``keras.models.load_model`` after ``import centernet_tf``.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras file written by train.py")
    parser.add_argument("--format", choices=["saved_model", "tflite"])
    parser.add_argument("--output")
    parser.parse_args(argv)
    print(
        "export.py: SavedModel / TFLite export is not implemented yet; nothing was written. "
        "Use the .keras file from train.py (keras.models.load_model after `import centernet_tf`).",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
