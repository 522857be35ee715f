"""python -m torch_tvm: the torch-tvm command (torch_tvm/_cli.py)."""
import sys

from ._cli import main

sys.exit(main())
