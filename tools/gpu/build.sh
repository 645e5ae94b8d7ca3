#!/usr/bin/env bash
# Builds what tools/gpu/check.sh runs, on an ordinary x86-64 machine with the Rust toolchain
# (the GPU machine has none): the release binary and the CUDA test binaries, copied with stable
# names into target/gpu-bundle/. Carry that folder to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/gpu-bundle
rm -rf "$out" && mkdir -p "$out"
cargo build --release --locked -p modicl
cp target/release/modicl "$out/"
# The test binaries: cargo prints each executable it built as JSON.
{
  cargo test --release --locked -p modicl-cuda --no-run --message-format=json
  cargo test --release --locked -p modicl-trainer --test gpu --no-run --message-format=json
  cargo test --release --locked -p modicl --test gpu_cli --no-run --message-format=json
} 2>/dev/null |
  python3 -c '
import json, shutil, sys
out = sys.argv[1]
for line in sys.stdin:
    try:
        m = json.loads(line)
    except json.JSONDecodeError:
        continue
    exe = m.get("executable")
    if m.get("reason") == "compiler-artifact" and exe and m["target"]["kind"] == ["test"]:
        name = m["target"]["name"]
        shutil.copy(exe, out + "/" + name)
        print("bundled", name)
' "$out"
# Without debug info: the folder must travel to the GPU machine (64 MiB at most).
strip --strip-debug "$out"/*
du -sh "$out"
ls -la "$out"
