"""Train a handwritten-digit classifier to the target accuracy in as little time as possible: the
editable recipe of this environment.

    python prepare.py --data /tmp/digits
    python train.py --data /tmp/digits --out /tmp/digits/run
    python evaluate.py --data /tmp/digits --out /tmp/digits/run --train-seconds 5

The score is how long this script runs, by the service's clock, and it counts only when the model it
leaves reaches the preset's target accuracy on images it never sees (below it, the trial is
`gate_miss`). Stopping early saves time; stopping too early misses the gate. Training must leave
`model.pt2` in --out: a torch.export program mapping float32 pixels [100, 64] (0 to 16) to logits
[100, 10].
"""

import argparse
import time
import tomllib
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

EXPORT_BATCH = 100  # the evaluator calls the exported model on batches of this many images

# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------
learning_rate = 0.01
momentum = 0.0
batch_size = 8
channels = 16
epochs = 30
# The share of the training images kept aside to watch progress on images the model has not seen,
# and the accuracy on them at which training stops before `epochs` (above 1: never).
holdout_fraction = 0.1
stop_at_holdout = 1.01


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.head = nn.Linear(2 * channels * 4 * 4, 10)

    def forward(self, pixels):
        x = (pixels / 16.0).view(-1, 1, 8, 8)
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def load(path):
    records = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8).view(-1, 65)
    return records[:, :64].float(), records[:, 64].long()


def accuracy(model, pixels, labels):
    with torch.no_grad():
        return (model(pixels).argmax(1) == labels).float().mean().item()


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
    max_steps = preset["budget"]["steps"]
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    pixels, labels = load(args.data / "train.bin")
    kept = int(len(labels) * holdout_fraction)
    holdout_x, holdout_y = pixels[:kept], labels[:kept]
    train_x, train_y = pixels[kept:], labels[kept:]

    model = Net()
    optimizer = make_optimizer(model)
    step, epoch, held = 0, 0, 0.0
    while epoch < epochs and step < max_steps and held < stop_at_holdout:
        order = torch.randperm(len(train_y))
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        epoch += 1
        held = accuracy(model, holdout_x, holdout_y)
        print(f"step {step}  loss {loss.item():.4f}  holdout {held:.4f}  {time.perf_counter() - started:.2f}s")

    args.out.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(EXPORT_BATCH, 64)
    torch.export.save(torch.export.export(model.eval(), (example,)), args.out / "model.pt2")
    print("---")
    print(f"holdout_accuracy: {held:.4f}")
    print(f"steps: {step}")
    print(f"epochs: {epoch}")


if __name__ == "__main__":
    main()
