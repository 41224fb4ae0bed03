"""Train a byte-level GPT on CPython's standard library: the editable recipe of this environment.

    python prepare.py --data /tmp/nanogpt
    python train.py --preset smoke --data /tmp/nanogpt --out /tmp/nanogpt/run
    python evaluate.py --preset smoke --data /tmp/nanogpt --out /tmp/nanogpt/run

The preset (environment.toml) fixes the budget and the model's base size; everything in this file
is the recipe and may change. Training must leave `model.pt2` (a torch.export program mapping
int64 tokens [batch, block_size] to logits [batch, block_size, 256]) and `model.json` in --out.
"""

import argparse
import json
import math
import time
import tomllib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB_SIZE = 256  # bytes
EXPORT_BATCH = 8  # the evaluator calls the exported model on batches of this many windows

# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------
learning_rate = 3e-3
min_lr_ratio = 0.1
warmup_ratio = 0.05
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 0.0
init_std = 0.02
depth_scale = 1.0
width_scale = 1.0
batch_scale = 1.0


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
def make_norm(dim):
    return nn.LayerNorm(dim)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.up = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.down = nn.Linear(4 * n_embd, n_embd, bias=False)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.norm1 = make_norm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size)
        self.norm2 = make_norm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, n_layer, n_embd, n_head, block_size):
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB_SIZE, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head, block_size) for _ in range(n_layer))
        self.norm_f = make_norm(n_embd)
        self.head = nn.Linear(n_embd, VOCAB_SIZE, bias=False)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=init_std)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm_f(x))


# ---------------------------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------------------------
def make_optimizer(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(beta1, beta2))


# ---------------------------------------------------------------------------------------------
# Schedule: linear warmup, then cosine decay to min_lr_ratio; progress runs from 0 to 1
# ---------------------------------------------------------------------------------------------
def lr_at(progress):
    if progress < warmup_ratio:
        return learning_rate * progress / warmup_ratio
    decay = (progress - warmup_ratio) / (1 - warmup_ratio)
    return learning_rate * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * decay)))


# ---------------------------------------------------------------------------------------------
# Data: random windows of the training bytes
# ---------------------------------------------------------------------------------------------
def get_batch(data, batch_size, block_size, generator):
    starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    x = torch.stack([data[s : s + block_size] for s in starts.tolist()])
    y = torch.stack([data[s + 1 : s + 1 + block_size] for s in starts.tolist()])
    return x.long(), y.long()


# ---------------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------------
def load_preset(name):
    spec = tomllib.loads((Path(__file__).parent / "environment.toml").read_text())
    preset = spec["presets"][name]
    return preset["budget"], preset["model"]


def main():
    parser = argparse.ArgumentParser(description="Train the byte-level GPT.")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    budget, size = load_preset(args.preset)
    torch.manual_seed(args.seed)
    device = size.get("device", "cpu")
    n_layer = max(1, round(size["n_layer"] * depth_scale))
    n_head = size["n_head"]
    n_embd = max(n_head, round(size["n_embd"] * width_scale / n_head) * n_head)
    block_size = size["block_size"]
    batch_size = max(1, round(size["batch_size"] * batch_scale))

    data = torch.frombuffer(bytearray((args.data / "train.bin").read_bytes()), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(args.seed)
    model = GPT(n_layer, n_embd, n_head, block_size).to(device)
    optimizer = make_optimizer(model)
    step_fn = torch.compile(model) if size.get("compile") else model
    autocast_dtype = getattr(torch, size["dtype"]) if "dtype" in size else None
    print(f"params: {sum(p.numel() for p in model.parameters()):,}  layers: {n_layer}  width: {n_embd}")

    max_steps, max_seconds = budget.get("steps"), budget.get("seconds")
    started, step, loss_ema = time.perf_counter(), 0, None
    while True:
        elapsed = time.perf_counter() - started
        progress = step / max_steps if max_steps else elapsed / max_seconds
        if progress >= 1:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(progress)
        x, y = get_batch(data, batch_size, block_size, generator)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device_type=device, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = step_fn(x)
        loss = F.cross_entropy(logits.float().view(-1, VOCAB_SIZE), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        step += 1
        loss_ema = loss.item() if loss_ema is None else 0.9 * loss_ema + 0.1 * loss.item()
        if step % max(1, (max_steps or 1000) // 40) == 0:  # about 40 points of the training curve
            print(f"step {step}  loss {loss_ema:.4f}  {time.perf_counter() - started:.1f}s", flush=True)

    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(EXPORT_BATCH, block_size, dtype=torch.long, device=device)
    with torch.no_grad():
        program = torch.export.export(model, (example,))
    torch.export.save(program, args.out / "model.pt2")
    seconds = time.perf_counter() - started
    (args.out / "model.json").write_text(json.dumps({"block_size": block_size, "steps": step, "device": device}))
    print("---")
    print(f"train_loss: {loss_ema:.4f}")
    print(f"steps: {step}")
    print(f"train_seconds: {seconds:.1f}")


if __name__ == "__main__":
    main()
