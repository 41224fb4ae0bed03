"""Build the starting checkpoint, data/sft.pt: the baseline recipe's GPT trained with supervision on
the training sums, half of whose labels are wrong (a random other sum), so that reinforcement
learning from the true reward has room to improve it.

    python build_sft.py        # about a minute on one CPU core; writes data/sft.pt (float16)

Protected and private: trials start from its output and never see it.
"""

import random
import time
from pathlib import Path

import tasks
import torch
import torch.nn.functional as F
from prepare import split
from train import GPT

HERE = Path(__file__).resolve().parent
STEPS, BATCH, LR, WRONG = 1000, 64, 1e-3, 0.5


def example(a, b, rng):
    label = a + b
    if rng.random() < WRONG:
        label = rng.choice([s for s in range(199) if s != a + b])
    return tasks.prompt(a, b), f"{label}\n"


def main():
    torch.manual_seed(0)
    rng = random.Random(0)
    *_, pairs = split()  # the training pairs: neither held-out split
    model = GPT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    started = time.perf_counter()
    for step in range(1, STEPS + 1):
        rows = torch.full((BATCH, tasks.BLOCK), tasks.PAD, dtype=torch.long)
        mask = torch.zeros(BATCH, tasks.BLOCK)
        for i, (a, b) in enumerate(rng.sample(pairs, BATCH)):
            question, answer = example(a, b, rng)
            ids = tasks.encode(question + answer)
            rows[i, : len(ids)] = torch.tensor(ids)
            mask[i, len(question) : len(ids)] = 1  # learn the answer, not the question
        logits = model(rows[:, :-1])
        losses = F.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none")
        loss = (losses * mask[:, 1:]).sum() / mask[:, 1:].sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step}  loss {loss.item():.4f}  {time.perf_counter() - started:.1f}s", flush=True)
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch.save(state, HERE / "data" / "sft.pt")
    print(f"{sum(v.numel() for v in state.values()):,} parameters -> data/sft.pt")


if __name__ == "__main__":
    main()
