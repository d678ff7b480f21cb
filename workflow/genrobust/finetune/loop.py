"""Fine-tuning Stable Diffusion's UNet on captioned real images, as the paper's
sd_finetune/finetune_sd.py (diffusers' examples/text_to_image/train_text_to_image.py) does.

The VAE and the text encoder are frozen (cast to the mixed-precision dtype); the UNet learns to
predict the noise (or v, by the scheduler's prediction_type) added at a random timestep of the
base model's DDPM schedule, by MSE. One process per GPU under `accelerate launch` or torchrun
(accelerate reads their environment), with mixed precision and gradient accumulation.

Reproducible and resumable: the data order and views come from seeds (finetune.data), the noise,
timesteps and VAE samples of micro-batch j of epoch e on process r from a generator seeded by
(seed, e, j, r). Every `checkpoint_every` optimizer steps the full training state (UNet or adapter,
optimizer, schedule, EMA, metrics) is saved with accelerator.save_state into a temporary folder
that is renamed into place once complete; a re-run resumes from the newest complete checkpoint,
skipping the micro-batches of the epoch already consumed, and ends with the same weights as an
uninterrupted run on the same device type and process count.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .recipe import FinetuneRecipe

CHECKPOINT_PREFIX = "step-"
STATE_FILE = "state.json"  # written last: a checkpoint folder without it is incomplete
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
ACCELERATE_PRECISION = {"fp32": "no", "fp16": "fp16", "bf16": "bf16"}


def _after_step(step: int) -> None:
    """Called after every optimizer step (tests make a run die here)."""


@dataclass
class Plan:
    """How many optimizer steps, over which micro-batches of which epochs."""

    images: int
    micro_per_epoch: int  # micro-batches of batch_size x processes images (the last partial one dropped)
    steps_per_epoch: int
    total_steps: int
    accumulation: int
    images_per_step: int

    @classmethod
    def of(cls, recipe: FinetuneRecipe, images: int, processes: int) -> Plan:
        micro, accumulation = images // (recipe.batch_size * processes), recipe.accumulation(processes)
        steps_per_epoch = micro // accumulation
        if steps_per_epoch < 1:
            raise ValueError(f"finetune.batch_size: {recipe.batch_size} x {accumulation} accumulated x {processes} "
                             f"processes is more than the {images} training images; lower it")
        total = recipe.max_steps or recipe.epochs * steps_per_epoch
        return cls(images, micro, steps_per_epoch, total, accumulation, recipe.batch_size * processes * accumulation)

    @property
    def epochs(self) -> int:
        return math.ceil(self.total_steps / self.steps_per_epoch)


# ----------------------------------------------------------------------------- setup


def _accelerator(recipe: FinetuneRecipe, device: str | None):
    import torch
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin

    cpu = device == "cpu" or (device is None and not torch.cuda.is_available())
    precision = recipe.mixed_precision
    if cpu and precision != "fp32":
        print(f"[finetune] mixed_precision {precision} on the CPU is slow or unsupported; using fp32", file=sys.stderr)
        precision = "fp32"
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's, before the Accelerator exists
    plugin = GradientAccumulationPlugin(num_steps=recipe.accumulation(processes), sync_with_dataloader=False)
    return Accelerator(mixed_precision=ACCELERATE_PRECISION[precision], gradient_accumulation_plugin=plugin,
                       cpu=cpu), precision


def _weight_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def _to(module, device, dtype) -> None:
    import torch

    module.to(device)
    if dtype != torch.float32:  # (a float32 .to(dtype=...) only makes diffusers warn)
        module.to(dtype=dtype)


def _load_components(base_id: str, revision: str | None):
    import diffusers
    import transformers
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    diffusers.utils.logging.disable_progress_bar()  # the run's own bar is the one that matters
    transformers.utils.logging.disable_progress_bar()

    try:
        parts = {
            "noise_scheduler": DDPMScheduler.from_pretrained(base_id, subfolder="scheduler", revision=revision),
            "tokenizer": CLIPTokenizer.from_pretrained(base_id, subfolder="tokenizer", revision=revision),
            "text_encoder": CLIPTextModel.from_pretrained(base_id, subfolder="text_encoder", revision=revision),
            "vae": AutoencoderKL.from_pretrained(base_id, subfolder="vae", revision=revision),
            "unet": UNet2DConditionModel.from_pretrained(base_id, subfolder="unet", revision=revision),
        }
    except (OSError, ValueError) as err:
        raise ValueError(f"could not load the base model '{base_id}' (revision {revision}) as Stable Diffusion "
                         f"(models.<base>.id): {err}") from err
    return parts


def _caption_embeddings(tokenizer, text_encoder, captions, device, dtype):
    """The frozen text encoder's output for each distinct caption (one per class), computed once."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(captions), 64):
            ids = tokenizer(list(captions[i:i + 64]), max_length=tokenizer.model_max_length, padding="max_length",
                            truncation=True, return_tensors="pt").input_ids.to(device)
            out.append(text_encoder(ids)[0].to(dtype))
    return torch.cat(out)


def _optimizer(recipe: FinetuneRecipe, params, lr: float):
    import torch

    if recipe.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise ValueError("finetune.optimizer: adamw8bit (the paper's) needs bitsandbytes, which is not "
                             "installed: pip install bitsandbytes==0.50.2 on the GPU nodes, or set optimizer: "
                             "adamw") from err
        cls = bnb.optim.AdamW8bit
    else:
        cls = torch.optim.AdamW
    return cls(params, lr=lr, betas=(recipe.adam_beta1, recipe.adam_beta2), weight_decay=recipe.adam_weight_decay,
               eps=recipe.adam_epsilon)


@dataclass
class Trainer:
    """The models, optimizer and schedule of one run, prepared by accelerate."""

    recipe: FinetuneRecipe
    accelerator: object
    precision: str
    unet: object
    vae: object
    noise_scheduler: object
    embeddings: object
    optimizer: object
    lr_scheduler: object
    ema: object
    lr: float

    @classmethod
    def create(cls, recipe: FinetuneRecipe, base_id: str, revision: str | None, captions, plan: Plan,
               device: str | None, parts: dict | None = None) -> Trainer:
        """Load the base model (or take `parts`: noise_scheduler, tokenizer, text_encoder, vae,
        unet, as the benchmark builds them) and set it up for the recipe on accelerate's device."""
        import torch
        from diffusers.optimization import get_scheduler

        accelerator, precision = _accelerator(recipe, device)
        dtype = _weight_dtype(precision)
        parts = parts or _load_components(base_id, revision)
        vae, text_encoder, unet = parts["vae"], parts["text_encoder"], parts["unet"]
        for frozen in (vae, text_encoder):
            frozen.requires_grad_(False)
            _to(frozen, accelerator.device, dtype)
        embeddings = _caption_embeddings(parts["tokenizer"], text_encoder, captions, accelerator.device, dtype)
        del text_encoder
        ema = None
        if recipe.method == "lora":
            from .lora import add_lora

            _to(unet, accelerator.device, dtype)  # the frozen base in the compute dtype
            params = add_lora(unet, recipe.lora_rank, recipe.effective_alpha())
            for p in params:
                p.data = p.data.float()  # adapter weights train in float32 (GradScaler needs it for fp16)
        else:
            unet.requires_grad_(True)
            unet.train()
            params = list(unet.parameters())
            if recipe.use_ema:
                from diffusers import UNet2DConditionModel
                from diffusers.training_utils import EMAModel

                ema = EMAModel(unet.parameters(), decay=recipe.ema_decay, model_cls=UNet2DConditionModel,
                               model_config=unet.config)
        if recipe.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        lr = recipe.effective_lr(accelerator.num_processes)
        optimizer = _optimizer(recipe, params, lr)
        # Stepped once per optimizer step, not prepared: accelerate's wrapper would step it once
        # per process. Registered, so save_state/load_state carry it.
        lr_scheduler = get_scheduler(recipe.lr_scheduler, optimizer=optimizer,
                                     num_warmup_steps=recipe.lr_warmup_steps, num_training_steps=plan.total_steps)
        unet, optimizer = accelerator.prepare(unet, optimizer)
        accelerator.register_for_checkpointing(lr_scheduler)
        if ema is not None:
            ema.to(accelerator.device)
        if accelerator.device.type == "cuda":  # off unless the recipe says (the paper's run: off)
            torch.backends.cuda.matmul.allow_tf32 = recipe.allow_tf32
        return cls(recipe, accelerator, precision, unet, vae, parts["noise_scheduler"], embeddings, optimizer,
                   lr_scheduler, ema, lr)

    def loss(self, pixels, caption_ids, generator):
        """The noise-prediction MSE of one micro-batch."""
        import torch
        import torch.nn.functional as F

        device, dtype = self.accelerator.device, self.embeddings.dtype
        with torch.no_grad():
            latents = self.vae.encode(pixels.to(device, dtype)).latent_dist.sample(generator=generator)
            latents = latents * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator, device=device, dtype=latents.dtype)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator, device=device).long()
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        kind = self.noise_scheduler.config.prediction_type
        if kind == "epsilon":
            target = noise
        elif kind == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise ValueError(f"the base model's scheduler predicts '{kind}'; fine-tuning knows epsilon and v_prediction")
        prediction = self.unet(noisy, timesteps, self.embeddings[caption_ids.to(device)]).sample
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")

    def micro_step(self, pixels, caption_ids, generator):
        """Forward and backward of one micro-batch; the optimizer steps (clipped) when the
        accumulation is complete. Returns the micro-batch's loss (detached)."""
        acc = self.accelerator
        with acc.accumulate(self.unet):
            loss = self.loss(pixels, caption_ids, generator)
            acc.backward(loss)
            if acc.sync_gradients:
                acc.clip_grad_norm_(self.unet.parameters(), self.recipe.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def trained_unet(self):
        """The UNet to save (EMA weights copied in when EMA is on)."""
        unet = self.accelerator.unwrap_model(self.unet)
        if self.ema is not None:
            self.ema.copy_to(unet.parameters())
        return unet


# ----------------------------------------------------------------------------- checkpoints


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (one whose state.json exists), or None."""
    done = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if (p / STATE_FILE).is_file()] if folder.is_dir() else []
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def save_checkpoint(trainer: Trainer, folder: Path, step: int, identity: dict, metrics: list[dict]) -> None:
    """Save the training state into folder/step-N, atomically: written under a temporary name, its
    state.json last, renamed into place, older checkpoints removed."""
    import torch

    acc = trainer.accelerator
    final = folder / f"{CHECKPOINT_PREFIX}{step:08d}"
    tmp = folder / f".{final.name}.partial"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:
        if trainer.ema is not None:
            torch.save(trainer.ema.state_dict(), tmp / "ema.pt")
        (tmp / METRICS_FILE).write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in metrics))
        (tmp / STATE_FILE).write_text(json.dumps({"step": step, "identity": identity}, sort_keys=True, indent=2))
        os.replace(tmp, final)
        for old in folder.glob(f"{CHECKPOINT_PREFIX}*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def resume(trainer: Trainer, folder: Path, identity: dict) -> tuple[int, list[dict]]:
    """(step, metrics) of the newest complete checkpoint, loaded; (0, []) without one. A checkpoint
    of another run is refused rather than silently mixed in."""
    import torch

    path = latest_checkpoint(folder)
    if path is None:
        return 0, []
    state = json.loads((path / STATE_FILE).read_text())
    differs = sorted(k for k in identity if state["identity"].get(k) != identity[k])
    if differs:
        raise ValueError(f"checkpoint {path} belongs to a different fine-tuning run (differs in {differs}); "
                         "delete it to start afresh")
    trainer.accelerator.load_state(str(path))
    if trainer.ema is not None:
        # The job's own checkpoint folder only (accelerate's load_state above unpickles it too); the EMA
        # state is tensors and numbers, so it loads without unpickling code.
        trainer.ema.load_state_dict(torch.load(path / "ema.pt", map_location="cpu", weights_only=True))
        trainer.ema.to(trainer.accelerator.device)
    metrics = [json.loads(line) for line in (path / METRICS_FILE).read_text().splitlines() if line.strip()]
    if trainer.accelerator.is_main_process:
        print(f"[finetune] resuming from {path} (step {state['step']})", file=sys.stderr)
    return int(state["step"]), metrics
