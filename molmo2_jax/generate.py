"""`python -m molmo2_jax.generate --checkpoint DIR [--image F ...] [--video F] --prompt TEXT ...`

The command line only; the code is `molmo2_jax/generation.py`. In Python call `molmo2_jax.generate(model,
processor, prompt, images=...)` (that is `molmo2_jax.generation.generate`); importing this module would rebind
the package attribute `molmo2_jax.generate` to it, so the library never does.
"""

import sys

from molmo2_jax.generation import main

if __name__ == "__main__":
    sys.exit(main())
