#!/usr/bin/env python3
"""PyTorch baseline for `metaids bench`: ProtoNet and MAML meta-steps on the GPU.

The models match metaids' defaults: N-way K-shot episodes (5-way 5-shot
15-query), 122 input features, an MLP with one hidden layer of 64 ReLU units
(ProtoNet embeds with it; MAML adds a linear head with one output per way),
Adam on the meta-parameters. MAML adapts each task with plain gradient steps
(inner learning rate 0.01) and differentiates through them (second order)
unless --first-order is given. ProtoNet's logits are negative squared
Euclidean distances to the per-way support means.

A meta-step processes a whole meta-batch of tasks at once: ProtoNet stacks
the tasks' rows through the encoder; MAML gives every task its own copy of
the weights (an expand of the shared ones) and uses batched matrix products,
so one inner gradient covers all tasks. Episodes are synthetic (Gaussian
classes), drawn on the device in advance from a pool, so the timing covers
the meta-step and not data loading; --host-data instead keeps the pool on the
host and gathers each step's episodes into page-locked staging (two sets,
each reused once its copy is done) that is copied to the GPU asynchronously,
as metaids' device learners do with features that are not on the device.

Output is JSON on stdout: the environment, then one record per algorithm
and meta-batch size with tasks/s (the median over repeats), steps/s, the
final loss and the peak GPU memory. A meta-batch that does not fit is
recorded with its error and the sweep goes on.

usage: python3 bench/pytorch_bench.py [--device cuda] [--algo protonet,maml]
           [--meta-batch 1,2,4,...,1024] [--steps 50] [--warmup 10] [--repeats 5]
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="torch device (default cuda)")
    p.add_argument("--algo", default="protonet,maml", help="comma-separated: protonet, maml")
    p.add_argument("--meta-batch", default=",".join(str(1 << i) for i in range(11)),
                   help="comma-separated meta-batch sizes (default 1,2,4,...,1024)")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--dim", type=int, default=122, help="input features")
    p.add_argument("--hidden", type=int, default=64, help="hidden units")
    p.add_argument("--inner-steps", type=int, default=1, help="MAML inner steps")
    p.add_argument("--inner-lr", type=float, default=0.01, help="MAML inner learning rate")
    p.add_argument("--first-order", action="store_true", help="first-order MAML")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--steps", type=int, default=50, help="timed meta-steps per repeat")
    p.add_argument("--warmup", type=int, default=10, help="untimed meta-steps first")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    p.add_argument("--pool", type=int, default=4096, help="synthetic tasks drawn in advance")
    p.add_argument("--host-data", action="store_true", help="copy each step's episodes from the host")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matrix products (default: exact float32)")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


class Episodes:
    """A pool of synthetic tasks: per task, `ways` Gaussian classes with
    random means; rows ordered by way (support, then query)."""

    def __init__(self, a, device, gen):
        n, w, s, q, d = a.pool, a.ways, a.shots, a.queries, a.dim
        store = torch.device("cpu") if a.host_data else device
        means = torch.randn(n, w, 1, d, generator=gen) * 0.25  # overlapping classes: a loss that moves
        xs = means + torch.randn(n, w, s, d, generator=gen)
        xq = means + torch.randn(n, w, q, d, generator=gen)
        self.xs = xs.reshape(n, w * s, d).to(store)
        self.xq = xq.reshape(n, w * q, d).to(store)
        self.ys = torch.arange(w).repeat_interleave(s).expand(n, -1).contiguous().to(store)
        self.yq = torch.arange(w).repeat_interleave(q).expand(n, -1).contiguous().to(store)
        # With --host-data on a GPU, each batch is gathered into page-locked
        # staging and copied asynchronously, as metaids' device learners do:
        # two sets, the host filling one while the other's copy may still run.
        self.staged = a.host_data and device.type == "cuda"
        self.slots, self.turn = {}, 0
        self.n, self.device, self.next = n, device, 0

    def batch(self, b):
        """The next b tasks (wrapping around the pool), on the device."""
        pool = (self.xs, self.ys, self.xq, self.yq)
        idx = (torch.arange(b, device=self.xs.device) + self.next) % self.n  # where the pool is: no copy
        self.next = (self.next + b) % self.n
        if not self.staged:
            return [t[idx] for t in pool]
        if b not in self.slots:
            self.slots[b] = [[[torch.empty((b, *t.shape[1:]), dtype=t.dtype, pin_memory=True) for t in pool], None]
                             for _ in range(2)]
        slot = self.slots[b][self.turn]
        self.turn ^= 1
        if slot[1] is not None:
            slot[1].synchronize()  # its copies have finished: the buffers may be refilled
        out = []
        for t, buf in zip(pool, slot[0]):
            torch.index_select(t, 0, idx, out=buf)
            out.append(buf.to(self.device, non_blocking=True))
        slot[1] = torch.cuda.Event()
        slot[1].record()
        return out


def mlp_params(sizes, device, gen):
    """He-uniform weights [in, out] and zero biases, as metaids initialises."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        lim = math.sqrt(6 / fan_in)
        w = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * lim
        params += [w.to(device).requires_grad_(), torch.zeros(fan_out, device=device, requires_grad=True)]
    return params


def mlp(x, params, head):
    """The MLP on x [rows, in] with weights [in, out], or on x [tasks, rows, in]
    with per-task weights [tasks, in, out]. ReLU after every layer but a head."""
    layers = len(params) // 2
    for i in range(layers):
        w, b = params[2 * i], params[2 * i + 1]
        x = (torch.bmm(x, w) if w.dim() == 3 else x @ w) + (b.unsqueeze(1) if b.dim() == 2 else b)
        if i < layers - 1 or not head:
            x = F.relu(x)
    return x


def protonet_step(params, opt, batch, a):
    xs, ys, xq, yq = batch
    b, ns, nq, w = xs.shape[0], xs.shape[1], xq.shape[1], a.ways
    emb = mlp(torch.cat([xs, xq], 1).reshape(b * (ns + nq), a.dim), params, head=False).reshape(b, ns + nq, -1)
    es, eq = emb[:, :ns], emb[:, ns:]
    # Support rows are ordered by way, shots per way.
    proto = es.reshape(b, w, a.shots, -1).mean(2)
    logits = -((eq.unsqueeze(2) - proto.unsqueeze(1)) ** 2).sum(-1)  # [b, nq, w]
    loss = F.cross_entropy(logits.reshape(b * nq, w), yq.reshape(b * nq))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def maml_step(params, opt, batch, a):
    xs, ys, xq, yq = batch
    b, w = xs.shape[0], a.ways
    # Each task's weights: an expand of the shared ones, so that the gradient
    # of the summed support losses with respect to them is per task.
    fast = [p.unsqueeze(0).expand(b, *p.shape) for p in params]
    for _ in range(a.inner_steps):
        out = mlp(xs, fast, head=True)
        # Sum over tasks of each task's mean support loss.
        inner = F.cross_entropy(out.reshape(-1, w), ys.reshape(-1), reduction="sum") / xs.shape[1]
        grads = torch.autograd.grad(inner, fast, create_graph=not a.first_order)
        fast = [f - a.inner_lr * g for f, g in zip(fast, grads)]
    out = mlp(xq, fast, head=True)
    loss = F.cross_entropy(out.reshape(-1, w), yq.reshape(-1))  # mean over tasks and queries
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(algo, b, a, device, episodes, gen):
    sizes = [a.dim, a.hidden] + ([a.ways] if algo == "maml" else [])
    params = mlp_params(sizes, device, gen)
    opt = torch.optim.Adam(params, lr=a.lr)
    step = protonet_step if algo == "protonet" else maml_step
    loss = None
    for _ in range(a.warmup):
        loss = step(params, opt, episodes.batch(b), a)
    sync(device)
    rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step(params, opt, episodes.batch(b), a)
        sync(device)
        rates.append(a.steps / (time.perf_counter() - t0))
    sps = statistics.median(rates)
    rec = {
        "algo": algo, "meta_batch": b, "steps_per_sec": sps, "tasks_per_sec": sps * b,
        "all_steps_per_sec": rates, "final_loss": float(loss) if loss is not None else None,
    }
    if device.type == "cuda":
        rec["peak_mem_bytes"] = torch.cuda.max_memory_allocated(device)
    return rec


def main(argv=None):
    a = parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("pytorch_bench: CUDA is not available to this PyTorch")
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32
    gen = torch.Generator().manual_seed(a.seed)
    episodes = Episodes(a, device, gen)
    env = {
        "torch": torch.__version__, "python": platform.python_version(), "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "ways": a.ways, "shots": a.shots, "queries": a.queries, "dim": a.dim, "hidden": a.hidden,
        "inner_steps": a.inner_steps, "first_order": a.first_order, "tf32": a.tf32,
        "host_data": a.host_data, "steps": a.steps, "warmup": a.warmup, "repeats": a.repeats,
    }
    results = []
    for algo in a.algo.split(","):
        if algo not in ("protonet", "maml"):
            sys.exit(f"pytorch_bench: unknown algorithm {algo!r} (protonet, maml)")
        for b in (int(s) for s in a.meta_batch.split(",")):
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            try:
                rec = run(algo, b, a, device, episodes, gen)
            except torch.cuda.OutOfMemoryError as e:
                rec = {"algo": algo, "meta_batch": b, "error": "out of memory: " + str(e).splitlines()[0]}
            results.append(rec)
            print(f"pytorch_bench: {algo} meta-batch {b}: "
                  + (f"{rec['tasks_per_sec']:.0f} tasks/s" if "error" not in rec else rec["error"]),
                  file=sys.stderr, flush=True)
    json.dump({"env": env, "results": results}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
