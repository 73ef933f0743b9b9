"""Tiled super-resolution: equal to whole-image inference, bounded windows, the upscale command, --save-dir."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from srnas_nni.evaluation.metrics import sr_metrics
from srnas_nni.evaluation.upscale import iter_tiles, tile_grid, upscale_array
from srnas_nni.evaluation.validation import super_resolve
from srnas_nni.models.registry import build_model, save_model_file

from tests.support.cli import run
from tests.support.images import smooth_image

#: TinySR is conv3x3 -> relu -> conv3x3 at LR: each output pixel sees 2 LR pixels on every side.
TINY_RECEPTIVE_RADIUS = 2


def tiled_float(model, lr, scale, tile, overlap):
    with torch.no_grad():
        out = torch.empty(1, 3, scale * lr.shape[0], scale * lr.shape[1])
        for rows, columns, core in iter_tiles(model.eval(), lr, scale, tile=tile, overlap=overlap):
            out[..., rows, columns] = core
    return out


def whole_float(model, lr):
    with torch.no_grad():
        return model(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)


def bytes_differ(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of differing bytes of two uint8 images of one shape, which must differ by at most 1."""
    assert a.shape == b.shape
    difference = np.abs(a.astype(int) - b.astype(int))
    assert difference.max() <= 1
    return float((difference > 0).mean())


@pytest.fixture
def photo_lr() -> np.ndarray:
    """A crop of scikit-image's astronaut with sizes that no tile below divides."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:137, 200:253])


def test_tile_grid_covers_the_range_once():
    assert tile_grid(10, 4) == [(0, 3), (3, 6), (6, 10)]
    assert tile_grid(257, 256) == [(0, 128), (128, 257)]  # no 1-pixel sliver
    for length, tile in [(37, 8), (53, 11), (100, 7)]:
        cores = tile_grid(length, tile)
        assert cores[0][0] == 0 and cores[-1][1] == length and len(cores) == -(-length // tile)
        assert all(stop == start for (_, stop), (start, _) in zip(cores, cores[1:]))
        assert all(0 < stop - start <= tile for start, stop in cores)
    assert tile_grid(10, 0) == [(0, 10)] and tile_grid(10, 10) == [(0, 10)] and tile_grid(3, 8) == [(0, 3)]


@pytest.mark.parametrize("tile", [8, 11, 16])
def test_tiled_equals_whole_image_when_the_overlap_covers_the_receptive_field(tiny_model, photo_lr, tile):
    whole = whole_float(tiny_model, photo_lr)
    tiled = tiled_float(tiny_model, photo_lr, 2, tile, TINY_RECEPTIVE_RADIUS)
    assert float((tiled - whole).abs().max()) < 1e-5
    # 8-bit: equal except where float rounding lands a value on the other side of a .5 boundary.
    assert bytes_differ(upscale_array(tiny_model, photo_lr, 2, tile=tile, overlap=TINY_RECEPTIVE_RADIUS),
                        super_resolve(tiny_model, photo_lr)) <= 1e-4


def test_tiled_differs_when_the_overlap_is_too_small(tiny_model, photo_lr):
    whole = whole_float(tiny_model, photo_lr)
    tiled = tiled_float(tiny_model, photo_lr, 2, 8, TINY_RECEPTIVE_RADIUS - 1)
    assert float((tiled - whole).abs().max()) > 1e-3  # the equality above is not trivially true


class WindowRecorder(torch.nn.Module):
    """Wraps a model and records the LR size of every input it gets."""

    def __init__(self, model):
        super().__init__()
        self.model, self.scale, self.sizes = model, model.scale, []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.model(x)


def test_tiling_bounds_the_window_the_model_sees(tiny_model):
    lr = smooth_image(150, 230, seed=3).copy()  # writable: torch warns on read-only arrays
    recorder = WindowRecorder(tiny_model)
    out = upscale_array(recorder, lr, 2, tile=40, overlap=6)
    assert out.shape == (300, 460, 3) and out.dtype == np.uint8
    assert len(recorder.sizes) == len(tile_grid(150, 40)) * len(tile_grid(230, 40)) == 4 * 6
    assert max(h for h, _ in recorder.sizes) <= 40 + 2 * 6 and max(w for _, w in recorder.sizes) <= 40 + 2 * 6
    assert bytes_differ(out, super_resolve(tiny_model, lr)) <= 1e-4


@pytest.fixture
def fsrcnn_file(tmp_path):
    torch.manual_seed(0)
    model = build_model("fsrcnn", 2)
    return save_model_file(tmp_path / "fsrcnn.pt", model, {"model": "fsrcnn", "scale": 2}, 2), model


def test_upscale_a_real_photo_gives_the_expected_size(capsys, tmp_path, fsrcnn_file):
    from skimage import data

    model_file, model = fsrcnn_file
    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "upscale", model_file, photo, "-o", out_dir, "--tile", "200", "--overlap", "8",
                         "--device", "cpu")
    assert code == 0, err
    written = out_dir / "astronaut_x2.png"
    with Image.open(written) as image:
        assert image.size == (1024, 1024) and image.mode == "RGB"
        result = np.asarray(image)
    # FSRCNN reaches 8 LR pixels (conv 5x5, four conv 3x3, deconv 9x9 / 2): an overlap of 8 gives one pass's image.
    whole = super_resolve(model, data.astronaut())
    assert bytes_differ(result, whole) <= 1e-4
    assert str(written) in out
    no_context = upscale_array(model, data.astronaut(), 2, tile=200, overlap=0)
    assert np.abs(no_context.astype(int) - whole.astype(int)).max() > 1  # seams without the overlap


def test_upscale_gray_rgba_and_16_bit_inputs(capsys, tmp_path, fsrcnn_file):
    model_file, model = fsrcnn_file
    rgb = smooth_image(20, 28, seed=1).copy()  # writable: torch warns on read-only arrays
    gray = smooth_image(20, 28, seed=2, channels=1).copy()
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit gray: v * 257 -> v
    code, _, err = run(capsys, "upscale", model_file, tmp_path / "gray.png", tmp_path / "rgba.png",
                       tmp_path / "deep.png", "-o", tmp_path / "out", "--tile", "0", "--device", "cpu")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "gray_x2.png") as image:
        assert image.mode == "L" and image.size == (56, 40)
        expected = np.asarray(Image.fromarray(super_resolve(model, gray)).convert("L"))
        assert np.array_equal(np.asarray(image), expected)
    with Image.open(tmp_path / "out" / "deep_x2.png") as image:
        assert np.array_equal(np.asarray(image), expected)
    with Image.open(tmp_path / "out" / "rgba_x2.png") as image:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), super_resolve(model, rgb))


def test_a_bad_image_is_one_line_and_the_others_are_written(capsys, tmp_path, fsrcnn_file):
    model_file, _ = fsrcnn_file
    good = tmp_path / "good.png"
    Image.fromarray(smooth_image(16, 16, seed=0)).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(good.read_bytes()[:50])
    code, _, err = run(capsys, "upscale", model_file, bad, good, "-o", tmp_path / "out", "--device", "cpu")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("srnas: error:") and str(bad) in err
    assert (tmp_path / "out" / "good_x2.png").is_file() and not (tmp_path / "out" / "broken_x2.png").exists()


def test_one_image_to_a_file_and_clashing_names(capsys, tmp_path, fsrcnn_file):
    model_file, _ = fsrcnn_file
    image = tmp_path / "a.png"
    Image.fromarray(smooth_image(16, 20, seed=0)).save(image)
    code, _, err = run(capsys, "upscale", model_file, image, "-o", tmp_path / "big.jpg", "--device", "cpu")
    assert code == 0, err
    with Image.open(tmp_path / "big.jpg") as written:
        assert written.format == "JPEG" and written.size == (40, 32)
    (tmp_path / "other").mkdir()
    Image.fromarray(smooth_image(16, 20, seed=1)).save(tmp_path / "other" / "a.png")
    code, _, err = run(capsys, "upscale", model_file, image, tmp_path / "other" / "a.png", "-o", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "a_x2.png" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_save_dir_writes_the_measured_images(capsys, tmp_path, image_folder, fsrcnn_file):
    model_file, _ = fsrcnn_file
    save_dir = tmp_path / "sr"
    code, out, err = run(capsys, "evaluate", "--model", model_file, "--data", image_folder, "--json",
                         "--save-dir", save_dir, "--device", "cpu")
    assert code == 0, err
    result = json.loads(out)
    for score in result["images"]:
        with Image.open(save_dir / f"{score['name']}.png") as image:
            sr = np.asarray(image)
        with Image.open(image_folder / f"{score['name']}.png") as image:
            hr = np.asarray(image)
        assert sr.shape == hr.shape
        assert sr_metrics(sr, hr, 2)["psnr"] == pytest.approx(score["psnr"], abs=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiled_on_cuda_matches_cpu(tiny_model, photo_lr):
    cpu = upscale_array(tiny_model, photo_lr, 2, tile=16, overlap=TINY_RECEPTIVE_RADIUS)
    gpu = upscale_array(copy.deepcopy(tiny_model).cuda(), photo_lr, 2, tile=16, overlap=TINY_RECEPTIVE_RADIUS,
                        device="cuda")
    assert np.abs(cpu.astype(int) - gpu.astype(int)).max() <= 1
