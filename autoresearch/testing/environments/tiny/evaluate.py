import sys

out = sys.argv[sys.argv.index("--out") + 1]
try:
    with open(f"{out}/result.txt") as handle:
        fields = handle.read().split()
except OSError as exc:
    sys.exit(f"no result: {exc}")
if fields == ["refuse"]:
    print("the model breaks a rule", file=sys.stderr)
    sys.exit(3)
x, y, params = float(fields[0]), float(fields[1]), int(fields[2])
print("---")
print(f"loss: {(x - 3) ** 2 + (y + 1) ** 2 + 1}")
print(f"params: {params}")
