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


# --- the `gpu` preset: any causal LM on problems with a \boxed{} answer (MATH and the like) --------
def math_prompt(question: str) -> str:
    return f"{question}\nPut the final answer in \\boxed{{}}.\n"


def boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} in the text (nested braces allowed), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None


def normalize(answer: str) -> str:
    return "".join(answer.replace("\\!", "").replace("$", "").split())


def math_reward(completion: str, answer: str) -> float:
    """1 when the completion's last boxed answer equals the reference, ignoring spaces and $, else 0."""
    given = boxed(completion)
    return 1.0 if given is not None and normalize(given) == normalize(answer) else 0.0


def read_problems(path: Path) -> list[dict[str, str]]:
    """Problems as {"question", "answer"} from a JSON Lines file written by prepare.py."""
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
