"""Feature networks beyond the built-in offline pair: weights from configured files, by name."""

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch

from solargen.evaluate import features
from solargen.evaluate.features import FeatureNetUnavailable, build_extractor
from solargen.evaluate.features import load_features, save_features
from solargen.evaluate.weights import fetch


@pytest.fixture(autouse=True)
def clean_registry():
    yield
    features.configure({})


@pytest.fixture
def pngs(tmp_path):
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(d / f"{i}.png")
    return d


def test_missing_weights_file_is_a_not_run_with_the_reason(pngs, tmp_path):
    features.configure({"inception_v3": {"weights": str(tmp_path / "nope.pt"), "url": "https://example.org/x.pt"}})
    save_features(pngs, "inception_v3", tmp_path / "f.npz")
    feats, status, _ = load_features(tmp_path / "f.npz")
    assert feats.size == 0
    assert status.startswith("not run: inception_v3: weights file") and "fetch_weights" in status
    features.configure({})  # nothing configured at all: says which key to set
    with pytest.raises(FeatureNetUnavailable, match="evaluation.feature_networks.inception_v3.weights"):
        build_extractor("inception_v3")


def test_torchvision_net_by_name_and_weights_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None).eval()
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    features.configure({"my_resnet": {"kind": "torchvision", "arch": "resnet18", "weights": str(tmp_path / "r18.pth"),
                                      "input_size": 64}})
    assert features.input_size("my_resnet") == 64
    x = torch.rand(2, 3, 64, 64) * 255
    got = build_extractor("my_resnet")(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255
    ref.fc = torch.nn.Identity()
    torch.testing.assert_close(got, ref((x - mean) / std))
    # A named layer instead: its output, globally averaged.
    features.configure({"my_resnet": {"kind": "torchvision", "arch": "resnet18", "weights": str(tmp_path / "r18.pth"),
                                      "input_size": 64, "layer": "layer1"}})
    assert build_extractor("my_resnet")(x).shape == (2, 64)


def test_timm_net_and_a_weights_file_that_does_not_fit(tmp_path):
    import timm

    torch.manual_seed(0)
    ref = timm.create_model("resnet10t", pretrained=False).eval()
    torch.save(ref.state_dict(), tmp_path / "r10.pth")
    features.configure({"r10": {"kind": "timm", "arch": "resnet10t", "weights": str(tmp_path / "r10.pth"),
                                "input_size": 32}})
    assert build_extractor("r10")(torch.rand(2, 3, 32, 32) * 255).shape == (2, ref.num_features)
    features.configure({"r10": {"kind": "timm", "arch": "resnet18", "weights": str(tmp_path / "r10.pth"),
                                "input_size": 32}})
    with pytest.raises(FeatureNetUnavailable, match="does not fit timm resnet18"):
        build_extractor("r10")
    (tmp_path / "trunc.pth").write_bytes((tmp_path / "r10.pth").read_bytes()[:1000])
    features.configure({"r10": {"kind": "timm", "arch": "resnet10t", "weights": str(tmp_path / "trunc.pth"),
                                "input_size": 32}})
    with pytest.raises(FeatureNetUnavailable, match="cannot read weights file"):
        build_extractor("r10")


def test_inception_block0_from_an_fid_inception_state_dict(tmp_path):
    """Block 0 of a torchvision-keyed Inception state dict (pytorch-fid's format): 64-d features."""
    from torchvision.models import inception_v3

    torch.manual_seed(1)
    net = inception_v3(weights=None, aux_logits=False, init_weights=True).eval()
    torch.save(net.state_dict(), tmp_path / "pt_inception.pth")
    features.configure({"inception_v3_other_block_0": {"weights": str(tmp_path / "pt_inception.pth")}})
    x = torch.rand(2, 3, 299, 299) * 255
    got = build_extractor("inception_v3_other_block_0")(x)
    y = x / 127.5 - 1
    for m in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1):
        y = m(y)
    torch.testing.assert_close(got, y.mean((2, 3)))
    torch.save({"other": torch.zeros(1)}, tmp_path / "wrong.pth")
    features.configure({"inception_v3_other_block_0": {"weights": str(tmp_path / "wrong.pth")}})
    with pytest.raises(FeatureNetUnavailable, match="not an FID Inception state dict"):
        build_extractor("inception_v3_other_block_0")


class _StandIn(torch.nn.Module):
    """A TorchScript file shaped like clean-fid's (a ``layers`` submodule giving 2048 features):
    the real file cannot be downloaded here, so this checks our wrapper, not Inception."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2048))

    def forward(self, x):
        return self.layers(x)


def test_cleanfid_inception_wrapper_scales_like_cleanfid(tmp_path):
    torch.manual_seed(0)
    m = _StandIn().eval()
    torch.jit.script(m).save(str(tmp_path / "inception-2015-12-05.pt"))
    features.configure({"inception_v3": {"weights": str(tmp_path / "inception-2015-12-05.pt")}})
    x = torch.rand(2, 3, 299, 299) * 255
    torch.testing.assert_close(build_extractor("inception_v3")(x), m.layers((x - 128) / 128))
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    features.configure({"inception_v3": {"weights": str(tmp_path / "bad.pt")}})
    with pytest.raises(FeatureNetUnavailable, match="is not clean-fid's TorchScript Inception"):
        build_extractor("inception_v3")


def test_fetch_verifies_and_is_idempotent(tmp_path):
    payload = b"weights" * 1000
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "w.pt").write_bytes(payload)
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Handler, directory=str(tmp_path / "srv")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/w.pt"
        dest = tmp_path / "weights" / "w.pt"
        with pytest.raises(OSError, match="does not match"):
            fetch(url, dest, sha256="0" * 64)
        assert not dest.exists() and not list(dest.parent.iterdir())  # nothing half-written left
        good = hashlib.sha256(payload).hexdigest()
        assert fetch(url, dest, sha256=good).read_bytes() == payload
        fetch(url, dest, sha256=good)
        assert len(hits) == 2  # the verified file is kept: no third download
    finally:
        server.shutdown()


@pytest.mark.parametrize("name", ["random_inception_v3", "efficientnet_lite0", "inception_v3"])
def test_channels_last_features_equal_the_plain_layout(pngs, tmp_path, name):
    """folder_features runs nets channels-last (for speed); the features equal the networks' plain
    NCHW output on the same resized images, to float rounding (incl. a TorchScript file)."""
    from solargen.evaluate.features import _Images, folder_features, input_size

    if name == "inception_v3":
        torch.jit.script(_StandIn().eval()).save(str(tmp_path / "inc.pt"))
        features.configure({"inception_v3": {"weights": str(tmp_path / "inc.pt")}})
    files = sorted(str(p) for p in pngs.iterdir())
    fast = folder_features(files, name)
    x = torch.stack(list(_Images(files, input_size(name))))
    with torch.no_grad():
        plain = build_extractor(name).to(memory_format=torch.contiguous_format)(x).numpy()
    assert fast.shape == plain.shape
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-5 * np.abs(plain).max())
