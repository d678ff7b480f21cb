"""The augmentation baselines of the paper's Table 3: DeepAugment and PixMix.

Each produces ONE augmented copy of a real image, fully determined by an integer seed per image
(the caller derives it, e.g. with seeding.derive_seed). No global RNG is touched: every random
draw comes from a numpy Generator / torch.Generator built from that seed (`_random`).

`edsr` and `cae` hold DeepAugment's two networks with their weight and activation
perturbations, `deepaugment` loads them and renders copies, `pixmix` holds PixMix. The offline
demo's stand-ins (random DeepAugment weights, procedural fractal mixing pictures) live in
genrobust.demo.
"""

# The package names `deepaugment` and `pixmix` are the functions (they shadow their modules);
# reach a module's other names with `from genrobust.baselines.pixmix import ...`.
from .cae import CAE, build_cae, perturb_cae_weights
from .deepaugment import DeepAugmentNets, deepaugment, load_deepaugment_nets
from .edsr import EDSR, build_edsr, perturb_edsr_weights
from .pixmix import AUGMENTATIONS, AUGMENTATIONS_ALL, MIXINGS, index_mixing_set, pixmix

__all__ = [
    "AUGMENTATIONS", "AUGMENTATIONS_ALL", "CAE", "DeepAugmentNets", "EDSR", "MIXINGS", "build_cae",
    "build_edsr", "deepaugment", "index_mixing_set", "load_deepaugment_nets", "perturb_cae_weights",
    "perturb_edsr_weights", "pixmix",
]
