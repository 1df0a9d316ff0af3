import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

# Two cores, many small models: one intra-op thread per test process is fastest and
# keeps the numbers identical run to run.
torch.set_num_threads(1)
