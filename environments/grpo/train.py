"""Reinforcement learning from verifiable rewards on two-digit sums: the editable recipe of this
environment.

    python prepare.py --data /tmp/grpo
    python train.py --data /tmp/grpo --out /tmp/grpo/run
    python evaluate.py --data /tmp/grpo --out /tmp/grpo/run

The policy starts from a small character-level GPT trained with supervision on sums whose labels
were half wrong (sft.pt, in the data folder). This script improves it with GRPO: sample a group
of answers per problem, reward the right ones (tasks.reward), and push up the log-probability of
answers that beat their group's mean. Training sees only the training problems; the evaluator
scores greedy answers to held-out ones. Training must leave `model.pt2` in --out: a torch.export
program mapping int64 tokens [100, 16] to logits [100, 16, 15].
"""

import argparse
import random
import time
import tomllib
from pathlib import Path

import tasks
import torch
import torch.nn as nn
import torch.nn.functional as F

EXPORT_BATCH = 100  # the evaluator calls the exported model on batches of this many problems

# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------
learning_rate = 5e-5
prompts_per_step = 32
samples_per_prompt = 8
temperature = 1.0
weight_decay = 0.0
grad_clip = 1.0


# ---------------------------------------------------------------------------------------------
# Model (the architecture of the starting checkpoint: change it and sft.pt no longer loads)
# ---------------------------------------------------------------------------------------------
N_LAYER, N_EMBD, N_HEAD = 4, 128, 4


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(N_EMBD), nn.LayerNorm(N_EMBD)
        self.qkv = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(N_EMBD, 4 * N_EMBD, bias=False), nn.GELU(), nn.Linear(4 * N_EMBD, N_EMBD, bias=False)
        )

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(len(tasks.VOCAB), N_EMBD)
        self.pos = nn.Embedding(tasks.BLOCK, N_EMBD)
        self.blocks = nn.ModuleList(Block() for _ in range(N_LAYER))
        self.ln = nn.LayerNorm(N_EMBD)
        self.head = nn.Linear(N_EMBD, len(tasks.VOCAB), bias=False)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def load_policy(path):
    model = GPT()
    model.load_state_dict({k: v.float() for k, v in torch.load(path, weights_only=True).items()})
    return model


# ---------------------------------------------------------------------------------------------
# Sampling and rewards
# ---------------------------------------------------------------------------------------------
def problems_tensor(pairs):
    """Rows of [BLOCK] tokens holding each prompt, padded, and each prompt's length."""
    rows = torch.full((len(pairs), tasks.BLOCK), tasks.PAD, dtype=torch.long)
    lengths = torch.zeros(len(pairs), dtype=torch.long)
    for i, (a, b) in enumerate(pairs):
        ids = tasks.encode(tasks.prompt(a, b))
        rows[i, : len(ids)] = torch.tensor(ids)
        lengths[i] = len(ids)
    return rows, lengths


@torch.no_grad()
def sample(model, rows, lengths, generator):
    """Each row continued by ANSWER_CHARS sampled characters, written in place after its prompt."""
    rows = rows.clone()
    index = torch.arange(len(rows))
    for step in range(tasks.ANSWER_CHARS):
        logits = model(rows)[index, lengths + step - 1] / temperature
        rows[index, lengths + step] = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(1)
    return rows


def completions(rows, lengths):
    return [tasks.decode(row[n : n + tasks.ANSWER_CHARS].tolist()) for row, n in zip(rows, lengths, strict=True)]


def answer_mask(rows, lengths):
    """1 where a row's token is part of its answer, up to and including the first end of answer."""
    positions = torch.arange(tasks.BLOCK).unsqueeze(0)
    start = lengths.unsqueeze(1)
    inside = (positions >= start) & (positions < start + tasks.ANSWER_CHARS)
    ended = torch.cumsum((rows == tasks.EOS) & inside, dim=1) - ((rows == tasks.EOS) & inside).long()
    return (inside & (ended == 0)).float()


# ---------------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------------
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = tomllib.loads((Path(__file__).parent / "environment.toml").read_text())
    preset = spec["presets"][args.preset]
    if "model" in preset.get("inputs", {}):  # the `gpu` preset: a Hugging Face model of the user's
        import train_hf

        return train_hf.main(args, preset)
    steps = preset["budget"]["steps"]
    torch.manual_seed(args.seed)
    rng, generator = random.Random(args.seed), torch.Generator().manual_seed(args.seed)
    pairs = tasks.training_pairs(args.data)
    model = load_policy(args.data / "sft.pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    started = time.perf_counter()

    for step in range(1, steps + 1):
        batch = [pair for pair in rng.sample(pairs, prompts_per_step) for _ in range(samples_per_prompt)]
        rows, lengths = problems_tensor(batch)
        model.eval()
        rows = sample(model, rows, lengths, generator)
        rewards = torch.tensor([tasks.reward(a, b, c) for (a, b), c in zip(batch, completions(rows, lengths), strict=True)])
        groups = rewards.view(prompts_per_step, samples_per_prompt)
        advantages = ((groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-6)).view(-1)

        model.train()
        logits = model(rows[:, :-1])
        logprobs = torch.gather(F.log_softmax(logits, -1), 2, rows[:, 1:].unsqueeze(2)).squeeze(2)
        mask = answer_mask(rows, lengths)[:, 1:]
        loss = -(advantages.unsqueeze(1) * logprobs * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if step % max(1, steps // 30) == 0:
            print(f"step {step}  reward {rewards.mean().item():.4f}  {time.perf_counter() - started:.1f}s", flush=True)

    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(EXPORT_BATCH, tasks.BLOCK, dtype=torch.long)
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (example,)), args.out / "model.pt2")
    print("---")
    print(f"train_reward: {rewards.mean().item():.4f}")
    print(f"steps: {steps}")


if __name__ == "__main__":
    main()
