"""DeepAugment and PixMix baselines (genrobust.baselines): architectures, seeding, independence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genrobust import baselines as bl
from genrobust.baselines import _random
from genrobust.demo.deepaugment_weights import write_random_deepaugment_weights
from genrobust.demo.fractals import write_fractal_mixing_set

# CAE_distort_imagenet.py, get_weights(): the original's list of CAE state-dict keys.
ORIGINAL_CAE_KEYS = [
    'e_conv_1.1.weight', 'e_conv_1.1.bias', 'e_conv_2.1.weight', 'e_conv_2.1.bias', 'e_block_1.1.weight',
    'e_block_1.1.bias', 'e_block_1.4.weight', 'e_block_1.4.bias', 'e_block_2.1.weight', 'e_block_2.1.bias',
    'e_block_2.4.weight', 'e_block_2.4.bias', 'e_block_3.1.weight', 'e_block_3.1.bias', 'e_block_3.4.weight',
    'e_block_3.4.bias', 'e_conv_3.0.weight', 'e_conv_3.0.bias', 'd_up_conv_1.0.weight', 'd_up_conv_1.0.bias',
    'd_up_conv_1.3.weight', 'd_up_conv_1.3.bias', 'd_block_1.1.weight', 'd_block_1.1.bias', 'd_block_1.4.weight',
    'd_block_1.4.bias', 'd_block_2.1.weight', 'd_block_2.1.bias', 'd_block_2.4.weight', 'd_block_2.4.bias',
    'd_block_3.1.weight', 'd_block_3.1.bias', 'd_block_3.4.weight', 'd_block_3.4.bias', 'd_up_conv_2.0.weight',
    'd_up_conv_2.0.bias', 'd_up_conv_2.3.weight', 'd_up_conv_2.3.bias', 'd_up_conv_3.0.weight',
    'd_up_conv_3.0.bias', 'd_up_conv_3.3.weight', 'd_up_conv_3.3.bias']


def conv(cin: int, cout: int, k: int) -> int:
    """Parameters of a biased conv (or transposed conv)."""
    return cin * cout * k * k + cout


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: one thread is faster (restored after this module)
    folder = write_random_deepaugment_weights(tmp_path_factory.mktemp("da") / "weights", seed=0)
    yield bl.load_deepaugment_nets(folder, "cpu")
    torch.set_num_threads(threads)


def images(n: int = 3, seed: int = 0) -> list[Image.Image]:
    """Smooth images of different, partly odd sizes."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (h, w) in enumerate([(24, 32), (30, 22), (17, 33), (32, 32)][:n]):
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.stack([xx * 255 // w, yy * 255 // h, np.full((h, w), 60 * i)], -1).astype(np.uint8)
        a[rng.integers(0, h)] = rng.integers(0, 256, 3)
        out.append(Image.fromarray(a))
    return out


# ---------------------------------------------------------------------------- architectures


def test_edsr_matches_original_configuration():
    # EDSR baseline x4 (EDSR_distort_imagenet.py): 16 res-blocks, 64 features, x4, 3 colours
    n_resblocks, f, scale = 16, 64, 4
    expected = (2 * conv(3, 3, 1)                      # sub_mean, add_mean (fixed 1x1 convs)
                + conv(3, f, 3)                        # head
                + n_resblocks * 2 * conv(f, f, 3)      # body res-blocks
                + conv(f, f, 3)                        # body end conv
                + 2 * conv(f, 4 * f, 3)                # log2(4) upsampler stages
                + conv(f, 3, 3))                       # tail conv
    net = bl.build_edsr()
    assert n_params(net) == expected == 1_517_595
    keys = set(net.state_dict())
    assert {"head.0.weight", "body.15.body.2.weight", "body.16.weight", "tail.0.0.weight", "tail.0.2.weight",
            "tail.1.weight", "sub_mean.weight", "add_mean.bias"} <= keys
    assert not any(k.startswith("body.17") for k in keys)
    with torch.no_grad():
        assert net(torch.rand(1, 3, 5, 7) * 255).shape == (1, 3, 20, 28)


def test_cae_matches_original_configuration():
    net = bl.build_cae()
    assert list(net.state_dict()) == ORIGINAL_CAE_KEYS
    expected = (conv(3, 64, 5) + conv(64, 128, 5) + 6 * conv(128, 128, 3) + conv(128, 32, 5)   # encoder
                + conv(32, 64, 3) + conv(64, 128, 2) + 6 * conv(128, 128, 3)                  # decoder
                + conv(128, 32, 3) + conv(32, 256, 2) + conv(256, 16, 3) + conv(16, 3, 3))
    assert n_params(net) == expected == 2_241_859
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 24)).shape == (1, 3, 32, 24)
        assert net.encode(torch.rand(1, 3, 32, 24)).shape == (1, 32, 8, 6)  # 32 x H/4 x W/4 code


# ---------------------------------------------------------------------------- DeepAugment


@pytest.mark.parametrize("which", ["edsr", "cae", None])
def test_deepaugment_shapes_and_seeding(nets, which):
    pils = images(3)
    a = bl.deepaugment(pils, [11, 12, 13], nets, "cpu", which=which)
    assert len(a) == 3
    for img, out in zip(pils, a):
        assert out.dtype == np.uint8 and out.shape == (img.size[1], img.size[0], 3)
    again = bl.deepaugment(pils, [11, 12, 13], nets, "cpu", which=which)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, again))
    other = bl.deepaugment(pils, [21, 22, 23], nets, "cpu", which=which)
    assert all(not np.array_equal(x, y) for x, y in zip(a, other))


@pytest.mark.parametrize("which", ["edsr", "cae"])
def test_deepaugment_input_scale(nets, which):
    """edsr_input_size / cae_input_size set the short side fed to the net (the original's 128 /
    512; small here to stay fast); None feeds EDSR the image at 1/4 size and the CAE at its own.
    Either way the copy has its source's size, so it keeps the source's aspect."""
    net = nets.edsr if which == "edsr" else nets.cae
    seen = []
    hook = net.register_forward_pre_hook(lambda module, args, kwargs: seen.append(tuple(args[0].shape[2:])),
                                         with_kwargs=True)
    try:
        src = images(1)[0]  # 32 x 24 (w x h)
        scaled = bl.deepaugment([src], [3], nets, which=which, edsr_input_size=12, cae_input_size=20)[0]
        own = bl.deepaugment([src], [3], nets, which=which)[0]
    finally:
        hook.remove()
    # EDSR: short side 12 (w 16); CAE: short side 20 (w 27), edge-padded to multiples of 4 (20 x 28).
    expected = [(12, 16), (6, 8)] if which == "edsr" else [(20, 28), (24, 32)]
    assert seen == expected
    assert scaled.shape == own.shape == (24, 32, 3) and not np.array_equal(scaled, own)


def test_deepaugment_tensor_input(nets):
    batch = torch.from_numpy(np.stack([np.asarray(im.resize((20, 16))) for im in images(2)]))
    out = bl.deepaugment(batch, [1, 2], nets, "cpu")
    assert [o.shape for o in out] == [(16, 20, 3)] * 2 and all(o.dtype == np.uint8 for o in out)
    with pytest.raises(ValueError, match="seeds"):
        bl.deepaugment(batch, [1], nets, "cpu")


def test_deepaugment_independent_of_batch(nets):
    pils = images(3)
    together = bl.deepaugment(pils, [5, 6, 7], nets, "cpu")
    alone = bl.deepaugment(pils[1:2], [6], nets, "cpu")
    reordered = bl.deepaugment([pils[2], pils[1]], [7, 6], nets, "cpu")
    assert together[1].tobytes() == alone[0].tobytes() == reordered[1].tobytes()
    assert together[2].tobytes() == reordered[0].tobytes()


def test_deepaugment_uses_both_nets(nets):
    """The seed splits images between EDSR and CAE about evenly (original: two distorted copies)."""
    picks = []
    for seed in range(40):
        rng = _random.streams(seed, _random.TAG_DEEPAUGMENT, 4)[0]
        picks.append(rng.random() < 0.5)
    assert 10 <= sum(picks) <= 30


@pytest.mark.parametrize("which", ["edsr", "cae"])
def test_perturbations_change_outputs(nets, which):
    img = images(1)
    plain = bl.deepaugment(img, [3], nets, "cpu", which=which, perturb=False)[0]
    changed = [not np.array_equal(bl.deepaugment(img, [s], nets, "cpu", which=which)[0],
                                  bl.deepaugment(img, [s], nets, "cpu", which=which, perturb=False)[0])
               for s in range(3)]
    assert all(changed)
    if which == "edsr":  # deterministic without perturbation; the CAE binarises stochastically
        assert np.array_equal(plain, bl.deepaugment(img, [4], nets, "cpu", which=which, perturb=False)[0])


def test_weight_perturbations_are_fresh_and_leave_base_weights(nets):
    edsr_before = {k: v.clone() for k, v in nets.edsr_state.items()}
    cae_before = {k: v.clone() for k, v in nets.cae_state.items()}
    for seed in range(12):
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        for state, perturb in ((nets.edsr_state, bl.perturb_edsr_weights), (nets.cae_state, bl.perturb_cae_weights)):
            new = perturb(state, rng, gen)
            assert new.keys() == state.keys()
            assert all(new[k].shape == v.shape for k, v in state.items())
            assert any(not torch.equal(new[k], v) for k, v in state.items()), (perturb.__name__, seed)
    assert all(torch.equal(nets.edsr_state[k], v) for k, v in edsr_before.items())
    assert all(torch.equal(nets.cae_state[k], v) for k, v in cae_before.items())


def test_every_activation_distortion_runs(nets):
    x = torch.rand(1, 3, 12, 12) * 255
    with torch.no_grad():
        plain = nets.edsr(x)
        for pre in range(5):
            for body in range(6):
                y = nets.edsr(x, pre, body, np.random.default_rng(0), torch.Generator().manual_seed(0))
                assert y.shape == plain.shape and torch.isfinite(y).all()
        z = torch.rand(1, 3, 16, 16)
        for option in range(9):
            y = nets.cae(z, option, np.random.default_rng(0), torch.Generator().manual_seed(0))
            assert y.shape == z.shape and torch.isfinite(y).all()


def test_missing_or_mismatched_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        bl.load_deepaugment_nets(tmp_path / "nowhere")
    folder = write_random_deepaugment_weights(tmp_path / "w", seed=1)
    (folder / "cae.pt").unlink()
    with pytest.raises(FileNotFoundError, match=str(folder / "cae.pt")):
        bl.load_deepaugment_nets(folder)
    torch.save(bl.build_edsr().state_dict(), folder / "cae.pt")  # wrong architecture
    with pytest.raises(ValueError, match="cae.pt"):
        bl.load_deepaugment_nets(folder)
    (folder / "cae.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cae.pt"):
        bl.load_deepaugment_nets(folder)
    # a wrapped, DataParallel-prefixed checkpoint loads
    torch.save({"state_dict": {f"module.{k}": v for k, v in bl.build_cae().state_dict().items()}},
               folder / "cae.pt")
    assert isinstance(bl.load_deepaugment_nets(folder).cae, bl.CAE)


def test_random_weights_deterministic(tmp_path):
    a = torch.load(write_random_deepaugment_weights(tmp_path / "a", 3) / "edsr.pt")
    b = torch.load(write_random_deepaugment_weights(tmp_path / "b", 3) / "edsr.pt")
    c = torch.load(write_random_deepaugment_weights(tmp_path / "c", 4) / "edsr.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.0.weight"], c["head.0.weight"])
    assert not any(p.name.startswith(".") for p in (tmp_path / "a").iterdir())


# ---------------------------------------------------------------------------- PixMix


@pytest.fixture(scope="module")
def mixing_set(tmp_path_factory):
    folder = write_fractal_mixing_set(tmp_path_factory.mktemp("mix") / "fractals", n=6, size=40, seed=0)
    return bl.index_mixing_set(folder)


def photo(w: int = 48, h: int = 32) -> Image.Image:
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 // w, yy * 255 // h, (xx * yy) % 256], -1).astype(np.uint8)
    a[h // 3: h // 2, w // 4: w // 2] = (250, 20, 20)
    return Image.fromarray(a)


def test_pixmix_seeding_and_size(mixing_set):
    img = photo()
    outs = [bl.pixmix(img, mixing_set, s) for s in range(12)]
    for o in outs:
        assert o.size == img.size and o.mode == "RGB"
    assert all(bl.pixmix(img, mixing_set, s).tobytes() == outs[s].tobytes() for s in range(12))
    assert len({o.tobytes() for o in outs}) >= 8  # a seed may leave the image as it is
    assert any(not np.array_equal(np.asarray(o), np.asarray(img)) for o in outs)


def test_pixmix_mixing_picture_sources(mixing_set):
    img = photo(40, 40)
    pictures = [Image.open(p).convert("RGB") for p in mixing_set]
    calls = []

    def pick(key: int) -> Image.Image:
        calls.append(key)
        return pictures[key % len(pictures)]

    loads = []
    for s in range(8):
        by_path = bl.pixmix(img, mixing_set, s)
        before = len(calls)
        assert by_path.tobytes() == bl.pixmix(img, pictures, s).tobytes() == bl.pixmix(img, pick, s).tobytes()
        loads.append(len(calls) - before)
    assert set(loads) <= {0, 1}  # one picture per image, loaded only when a round uses it
    assert 0 < sum(loads) < 8


def test_pixmix_k0_is_identity_or_one_augmentation():
    img = photo()

    def never(_):
        raise AssertionError("k=0 never mixes in a picture")

    outs = [bl.pixmix(img, never, s, k=0) for s in range(10)]
    same = [np.array_equal(np.asarray(o), np.asarray(img)) for o in outs]
    assert any(same)  # coin flip: the original image is returned (bit-exact)
    assert all(o.size == img.size for o in outs)


def test_pixmix_operations_keep_size():
    img = photo(37, 23)
    rng = np.random.default_rng(0)
    for op in bl.AUGMENTATIONS_ALL:
        out = op(img.copy(), 3, rng)
        assert out.size == img.size and out.mode == "RGB", op.__name__
    assert len(bl.AUGMENTATIONS) == 9 and len(bl.AUGMENTATIONS_ALL) == 13
    a = np.full((4, 4, 3), 0.5, np.float32)
    for mix in bl.MIXINGS:
        out = mix(a, a, 3, np.random.default_rng(1))
        assert out.dtype == np.float32 and out.shape == a.shape


def test_pixmix_all_ops_flag(mixing_set):
    img = photo()
    a = [bl.pixmix(img, mixing_set, s, all_ops=False, beta=4, aug_severity=1).tobytes() for s in range(6)]
    b = [bl.pixmix(img, mixing_set, s, all_ops=True, beta=4, aug_severity=1).tobytes() for s in range(6)]
    assert a != b


def test_index_mixing_set(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing")):
        bl.index_mixing_set(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no pictures")
    with pytest.raises(ValueError, match=str(tmp_path / "empty")):
        bl.index_mixing_set(tmp_path / "empty")
    root = tmp_path / "set"
    (root / "fractals").mkdir(parents=True)
    (root / "fvis").mkdir()
    for p in (root / "fvis" / "b.png", root / "fractals" / "a.JPG", root / "c.png"):
        Image.new("RGB", (4, 4)).save(p, format="PNG")
    (root / "readme.md").write_text("x")
    assert bl.index_mixing_set(root) == sorted(str(p) for p in (root / "c.png", root / "fractals" / "a.JPG",
                                                                root / "fvis" / "b.png"))


def test_fractal_mixing_set_deterministic(tmp_path):
    a = bl.index_mixing_set(write_fractal_mixing_set(tmp_path / "a", n=4, size=32, seed=5))
    b = bl.index_mixing_set(write_fractal_mixing_set(tmp_path / "b", n=4, size=32, seed=5))
    c = bl.index_mixing_set(write_fractal_mixing_set(tmp_path / "c", n=4, size=32, seed=6))
    pix = lambda paths: [np.asarray(Image.open(p)) for p in paths]  # noqa: E731
    assert len(a) == 4 and all(x.shape == (32, 32, 3) for x in pix(a))
    assert all(np.array_equal(x, y) for x, y in zip(pix(a), pix(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(pix(a), pix(c)))
    assert all(x.std() > 5 for x in pix(a))  # not blank
    # rewriting replaces the folder atomically and leaves no temporary folders behind
    write_fractal_mixing_set(tmp_path / "a", n=2, size=32, seed=6)
    assert len(bl.index_mixing_set(tmp_path / "a")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]
