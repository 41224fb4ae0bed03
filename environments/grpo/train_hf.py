"""GRPO on any Hugging Face causal LM: the `gpu` preset's recipe (train.py hands over to it).

The preset names a local model folder (inputs.model, e.g. Qwen2.5-Math-1.5B) and a dataset that
prepare.py split into hf_train.jsonl (problems with answers: the reward needs them) and a held-out
set only the evaluator reads. Each step samples a group of answers per problem, rewards those whose
last \\boxed{} matches (tasks.math_reward), and pushes up the log-probability of answers that beat
their group's mean. Training must leave the policy in --out/policy (save_pretrained, with its
tokenizer).
"""

import random
import time

import tasks
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------
learning_rate = 1e-6
prompts_per_step = 8
samples_per_prompt = 8
temperature = 1.0
grad_clip = 1.0


def completion_mask(completions, eos_id):
    """1 for each generated token up to and including the first end of sequence, 0 after it."""
    is_eos = completions == eos_id
    before = torch.cumsum(is_eos, dim=1) - is_eos.long()
    return (before == 0).long()


def main(args, preset):
    settings, inputs = preset["model"], preset["inputs"]
    if not inputs.get("model"):
        raise SystemExit("set presets.gpu.inputs.model in environment.toml to a local model folder")
    device, dtype = settings.get("device", "cuda"), getattr(torch, settings.get("dtype", "bfloat16"))
    steps, max_new_tokens = preset["budget"]["steps"], int(settings["max_new_tokens"])
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(inputs["model"])
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(inputs["model"], dtype=dtype).to(device)
    problems = tasks.read_problems(args.data / "hf_train.jsonl")
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    started = time.perf_counter()

    for step in range(1, steps + 1):
        batch = rng.sample(problems, min(prompts_per_step, len(problems)))
        prompts = tokenizer([tasks.math_prompt(p["question"]) for p in batch], return_tensors="pt", padding=True)
        prompts = prompts.to(device)
        model.eval()
        with torch.no_grad():
            sequences = model.generate(
                **prompts,
                do_sample=True,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                num_return_sequences=samples_per_prompt,
                pad_token_id=tokenizer.pad_token_id,
            )
        width = prompts["input_ids"].shape[1]
        generated = sequences[:, width:]
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        answers = [p["answer"] for p in batch for _ in range(samples_per_prompt)]
        rewards = torch.tensor([tasks.math_reward(t, a) for t, a in zip(texts, answers, strict=True)], device=device)
        groups = rewards.view(len(batch), samples_per_prompt)
        advantages = ((groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-6)).view(-1)

        model.train()
        generated_mask = completion_mask(generated, tokenizer.eos_token_id)
        attention = torch.cat([prompts["attention_mask"].repeat_interleave(samples_per_prompt, 0), generated_mask], 1)
        positions = (attention.cumsum(1) - 1).clamp(min=0)  # as generate numbers left-padded rows
        logits = model(sequences, attention_mask=attention, position_ids=positions).logits[:, width - 1 : -1].float()
        logprobs = torch.gather(torch.log_softmax(logits, -1), 2, generated.unsqueeze(2)).squeeze(2)
        mask = generated_mask.float()
        loss = -(advantages.unsqueeze(1) * logprobs * mask).sum() / mask.sum().clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        print(f"step {step}  reward {rewards.mean().item():.4f}  {time.perf_counter() - started:.1f}s", flush=True)

    model.eval()
    model.save_pretrained(args.out / "policy")
    tokenizer.save_pretrained(args.out / "policy")
    print("---")
    print(f"train_reward: {rewards.mean().item():.4f}")
    print(f"steps: {steps}")
