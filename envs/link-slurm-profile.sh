#!/usr/bin/env bash
# Makes `snakemake --profile slurm` work from any folder: links this checkout's SLURM profile
# (workflow/profiles/slurm, the single source) to Snakemake's user profile folder,
# ${XDG_CONFIG_HOME:-~/.config}/snakemake/slurm. Idempotent; never replaces a profile of your
# own (it says so instead), but does replace a link left dangling by a removed checkout.
set -euo pipefail
cd "$(dirname "$0")/.."

source_dir="$PWD/workflow/profiles/slurm"
profiles="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
link="$profiles/slurm"

if [ -L "$link" ] && [ "$(readlink "$link")" = "$source_dir" ]; then
  exit 0
fi
if [ -e "$link" ]; then
  echo "== $link exists and is not this checkout's profile; left as it is."
  echo "   To use this one: ln -sfn $source_dir $link   (or --profile workflow/profiles/slurm)"
  exit 0
fi
mkdir -p "$profiles"
ln -sfn "$source_dir" "$link"   # -f: replaces a dangling link
echo "== linked $link -> $source_dir (snakemake --profile slurm)"
