#!/usr/bin/env bash
# Makes `snakemake --profile slurm` work from any folder: links this checkout's SLURM profile
# (workflow/profiles/slurm, the single source) to Snakemake's user profile folder,
# ${XDG_CONFIG_HOME:-~/.config}/snakemake/slurm. Idempotent. A link it made for another genrobust
# checkout (or one left dangling by a removed checkout) follows this one, and says so; a profile
# of your own is never replaced (it says so instead).
set -euo pipefail
cd "$(dirname "$0")/.."

source_dir="$PWD/workflow/profiles/slurm"
profiles="${XDG_CONFIG_HOME:-$HOME/.config}/snakemake"
link="$profiles/slurm"

if [ -L "$link" ]; then
  target=$(readlink "$link")
  if [ "$target" = "$source_dir" ]; then
    exit 0
  fi
  # a link to nothing any more, or to another checkout's profile folder (its config names genrobust)
  if [ ! -e "$link" ] || { [[ "$target" == */workflow/profiles/slurm ]] && grep -qs "genrobust" "$target/config.yaml"; }; then
    ln -sfn "$source_dir" "$link"
    echo "== re-linked $link -> $source_dir (it was another checkout's: $target)"
    exit 0
  fi
fi
if [ -e "$link" ]; then
  echo "== $link exists and is not a genrobust checkout's profile; left as it is."
  echo "   To use this one: ln -sfn $source_dir $link   (or --profile workflow/profiles/slurm)"
  exit 0
fi
mkdir -p "$profiles"
ln -sfn "$source_dir" "$link"
echo "== linked $link -> $source_dir (snakemake --profile slurm)"
