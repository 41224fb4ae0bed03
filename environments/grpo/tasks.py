"""The task, as training and the evaluator both see it: sums of two numbers from 0 to 99, written
as characters ("47+38=" then "85" and a newline).

Protected: trials import it and may not change it. The held-out problems are not here: prepare.py
draws them apart and hands training only the pairs that are left (train_pairs.txt).
"""

from pathlib import Path

VOCAB = "0123456789+=\n."  # "\n" ends an answer; "." pads a row after its end
EOS, PAD = VOCAB.index("\n"), VOCAB.index(".")
BLOCK = 16  # the longest problem and answer, "99+99=198\n", is 10 characters
ANSWER_CHARS = 4  # at most three digits and the newline


def encode(text: str) -> list[int]:
    return [VOCAB.index(c) for c in text]


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def prompt(a: int, b: int) -> str:
    return f"{a}+{b}="


def reward(a: int, b: int, completion: str) -> float:
    """1 when the completion is the sum followed by the end of the answer, else 0."""
    return 1.0 if completion.split("\n", 1)[0] == str(a + b) and "\n" in completion else 0.0


def training_pairs(data: Path) -> list[tuple[int, int]]:
    """The problems training may draw from (the held-out ones are not among them)."""
    lines = (data / "train_pairs.txt").read_text().split()
    return [(int(a), int(b)) for a, b in (line.split("+") for line in lines)]
