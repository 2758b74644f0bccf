"""Peak memory of ``hf-l2mt interpolate`` (one α) and ``hf-l2mt merge`` (two runs) against the size of the model.

Builds a Marian of opus-mt-en-de's shape (58,101 words, d_model 512, 6 + 6 layers: 74 M parameters, 297 MB in
float32) and a copy of it with every weight moved, saves both, and interpolates / merges them in a fresh process.
Two numbers, each less the same measure just before the call, next to the model's bytes: the peak resident memory
(``VmHWM``, reset through ``/proc/self/clear_refs`` once torch and transformers are imported), which counts the pages
of the memory-mapped weight files that were read (the kernel may drop them: they are the files), and the peak of
anonymous memory (``RssAnon``: what the process allocated), sampled every millisecond by a thread. Linux only.

    python -m benchmarks.interpolation_memory [--vocab_size 58101 --d_model 512 --layers 6 --ffn_dim 2048]
        [--json PATH]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, os, sys, threading, time
import torch
import transformers, safetensors, peft  # imported before the reset: their memory is not the call's
from hf_l2mt.apps.weights.interpolate import interpolate
from hf_l2mt.apps.weights.merge import merge

def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key + ":"))

base, run, other, out, what = sys.argv[1:6]
before, anon_before = status("VmRSS"), status("RssAnon")
anon_peak, done = [anon_before], threading.Event()

def sample():
    while not done.is_set():
        anon_peak[0] = max(anon_peak[0], status("RssAnon"))
        time.sleep(0.001)

sampler = threading.Thread(target=sample)
sampler.start()
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # resets VmHWM to the current resident size
if what == "interpolate":
    interpolate(run, base, [0.5], output_dir=out)
else:
    merge([run, other], base, out, method="ties")
done.set()
sampler.join()
print(json.dumps({"resident": status("VmHWM") - before, "anonymous": anon_peak[0] - anon_before}))
"""


def build(directory: str, vocab_size: int, d_model: int, layers: int, ffn_dim: int) -> tuple[int, list[str]]:
    import torch
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                          encoder_ffn_dim=ffn_dim, decoder_ffn_dim=ffn_dim, max_position_embeddings=512,
                          pad_token_id=vocab_size - 1, decoder_start_token_id=vocab_size - 1, eos_token_id=0)
    torch.manual_seed(0)
    model = MarianMTModel(config)
    paths = []
    for name in ("base", "run", "other"):
        path = os.path.join(directory, name)
        model.save_pretrained(path)
        paths.append(path)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(1e-3)
    weights = os.path.getsize(os.path.join(paths[0], "model.safetensors"))
    return weights, paths


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab_size", type=int, default=58101)
    parser.add_argument("--d_model", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--ffn_dim", type=int, default=2048)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers here")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        results["model_bytes"], (base, run, other) = build(directory, args.vocab_size, args.d_model, args.layers,
                                                           args.ffn_dim)
        for what in ("interpolate", "merge"):
            out = os.path.join(directory, f"out-{what}")
            child = subprocess.run([sys.executable, "-c", CHILD, base, run, other, out, what], check=True,
                                   capture_output=True, text=True)
            peaks = json.loads(child.stdout.strip().splitlines()[-1])
            results[what] = {f"peak_{kind}_bytes": peak for kind, peak in peaks.items()} | {
                f"peak_{kind}_in_models": round(peak / results["model_bytes"], 2) for kind, peak in peaks.items()}
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
