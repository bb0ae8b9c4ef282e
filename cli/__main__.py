"""``python -m pnp_rgm.cli`` (e.g. ``torchrun --nproc_per_node 4 -m pnp_rgm.cli train ...``)."""
from pnp_rgm.cli import main

main()
