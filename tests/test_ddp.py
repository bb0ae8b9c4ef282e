"""Two-process gloo DDP run on CPU: ranks end with identical weights, one checkpoint is written."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent('''
    import sys, torch
    torch.set_num_threads(1)
    from safetensors.torch import save_file
    from pnp_rgm.train.config import load_run_config
    from pnp_rgm.train.trainer import train

    data, out, dump = sys.argv[1:4]
    cfg = load_run_config({
        "model": {"base_width": 8, "channel_mult": [1, 2], "emb_dim": 16, "nz": 8, "w_dim": 16, "groups": 4,
                  "disc_width": 8, "disc_mult": [1, 2]},
        "objective": {"prior": "kld", "r1_every": 2},
        "data": {"crop": 16, "batch_size": 2, "num_workers": 0},
        "train": {"steps": 3, "ckpt_every": 3, "sample_every": 100, "log_every": 1, "precision": "fp32",
                  "channels_last": False}})

    def on_end(c, info):
        sd = {f"G/{k}": v.detach().clone() for k, v in c.G.state_dict().items()}
        sd.update({f"D/{k}": v.detach().clone() for k, v in c.D.state_dict().items()})
        sd.update({f"E/{k}": v.detach().clone() for k, v in c.ema.model.state_dict().items()})
        save_file(sd, f"{dump}/rank{info.rank}.safetensors")

    s = train(cfg, data, out, progress=False, on_end=on_end)
    assert s["world_size"] == 2, s
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ranks_agree(tmp_path):
    from safetensors.torch import load_file
    from skimage.data import astronaut

    from pnp_rgm.io import write_image

    data = tmp_path / "data"
    data.mkdir()
    img = astronaut().astype(np.float32) / 255.0
    for i in range(4):
        write_image(data / f"{i}.png", img[i * 40:i * 40 + 32, :32], overwrite=True)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        procs.append(subprocess.Popen([sys.executable, str(script), str(data), str(tmp_path / "run"), str(tmp_path)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("DDP workers timed out")
        outs.append(out.decode(errors="replace"))
    assert all(p.returncode == 0 for p in procs), "\n----\n".join(o[-3000:] for o in outs)
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ck = tmp_path / "run" / "checkpoint"
    assert (ck / "model.safetensors").is_file() and (ck / "trainer" / "state.json").is_file()
    assert [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")] == []  # no temp leftovers
    # the trained weights moved away from the initialisation (gradients were applied)
    torch.manual_seed(0)
    from pnp_rgm.nets import Generator
    from pnp_rgm.train.config import load_run_config

    G0 = Generator(load_run_config(ck / "config.yaml").model)
    assert any(not torch.equal(v, a[f"G/{k}"]) for k, v in G0.state_dict().items())
