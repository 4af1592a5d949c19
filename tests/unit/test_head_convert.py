"""``ner-os head convert``: the NER Retriever reference checkpoint (random weights of its exact shape) as a head."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from ner_os.cli import cli
from ner_os.config import Settings
from ner_os.errors import ConfigError
from ner_os.head import ProjectionHead
from ner_os.head_convert import convert_checkpoint
from ner_os.mentions.embedder import MentionEmbedder
from test_encoder_tiny import CORPUS, LAYER, tiny_model_dir

pytestmark = pytest.mark.unit
torch = pytest.importorskip("torch")


class ReferenceMLP(torch.nn.Module):
    """The shape of the reference implementation's ``MLP``: ``net`` = Linear -> SiLU -> Dropout -> Linear."""

    def __init__(self, d_in=1024, hidden=500, out=500):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.SiLU(), torch.nn.Dropout(0.1),
                                       torch.nn.Linear(hidden, out))

    def forward(self, x):
        return self.net(x)


def reference_checkpoint(path, seed=0, wrap=None, **shape):
    torch.manual_seed(seed)
    mlp = ReferenceMLP(**shape).half().eval()
    state = mlp.state_dict()
    torch.save(wrap(state) if wrap else state, path)
    return mlp


def torch_projection(mlp, x: np.ndarray) -> np.ndarray:
    """What the reference computes (its MLP in fp16, as it runs it), L2-normalised."""
    with torch.no_grad():
        out = mlp(torch.from_numpy(x).half()).float().numpy()
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def test_reference_checkpoint_converts_and_projects_as_torch(tmp_path):
    mlp = reference_checkpoint(tmp_path / "contrastive_projection_head.pth")
    head = convert_checkpoint(tmp_path / "contrastive_projection_head.pth", tmp_path / "head")
    loaded = ProjectionHead.load(tmp_path / "head")
    assert (loaded.in_dim, loaded.hidden_dim, loaded.out_dim) == (1024, 500, 500)
    assert not loaded.offsets and not loaded.maps and loaded.skip_weight == 0
    assert loaded.encoder == {"profile": "llama-3.1-8b", "model": None, "layer": 17, "d_v": 1024}
    assert loaded.digest == head.digest
    x = np.random.default_rng(1).standard_normal((4, 1024)).astype(np.float32)
    np.testing.assert_allclose(loaded.project(x), torch_projection(mlp, x), atol=1e-3)
    np.testing.assert_allclose(loaded.project(x, role="query"), loaded.project(x), atol=0)


@pytest.mark.parametrize("wrap", [
    lambda state: {"state_dict": {f"module.{k.removeprefix('net.')}": v for k, v in state.items()}},
    lambda state: {"model": {k.replace("net.0", "fc1").replace("net.3", "fc2"): v for k, v in state.items()}},
])
def test_common_layouts_convert(tmp_path, wrap):
    mlp = reference_checkpoint(tmp_path / "ck.pt", wrap=wrap)
    head = convert_checkpoint(tmp_path / "ck.pt", tmp_path / "head")
    x = np.random.default_rng(2).standard_normal((2, 1024)).astype(np.float32)
    np.testing.assert_allclose(head.project(x), torch_projection(mlp, x), atol=1e-3)


def test_unknown_keys_and_wrong_width_say_what_they_found(tmp_path):
    torch.save({"encoder.weight": torch.zeros(3, 3)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"other\.pt: no Linear .* \(encoder\.weight\); expected net\.0\.weight"):
        convert_checkpoint(tmp_path / "other.pt", tmp_path / "head")
    reference_checkpoint(tmp_path / "small.pt", d_in=256)
    with pytest.raises(ConfigError, match="reads 256-d vectors but the profile's value vectors are 1024-d"):
        convert_checkpoint(tmp_path / "small.pt", tmp_path / "head")
    assert not (tmp_path / "head").exists()


def test_cli_converts_and_reports_errors_in_one_line(tmp_path):
    reference_checkpoint(tmp_path / "ck.pth")
    runner = CliRunner()
    done = runner.invoke(cli, ["head", "convert", str(tmp_path / "ck.pth"), "--out", str(tmp_path / "head")])
    assert done.exit_code == 0, done.output
    assert "llama-3.1-8b layer 17 (1024 -> 500 -> 500)" in done.output
    wrong = runner.invoke(cli, ["head", "convert", str(tmp_path / "ck.pth"), "--out", str(tmp_path / "h2"),
                                "--profile", "smollm2-135m"])
    assert wrong.exit_code == 2 and "192-d" in wrong.output and "Traceback" not in wrong.output


def test_converted_head_runs_the_pipeline_on_a_tiny_llama(tmp_path, tmp_path_factory):
    model = tiny_model_dir("llama", tmp_path_factory)
    mlp = reference_checkpoint(tmp_path / "tiny.pth", d_in=32, hidden=20, out=20)
    convert_checkpoint(tmp_path / "tiny.pth", tmp_path / "head", profile="custom", model=model, layer=LAYER)
    settings = Settings.resolve(profile="custom", model=model, layer=LAYER, head=str(tmp_path / "head"),
                                backend="torch", cache_dir=str(tmp_path_factory.getbasetemp()))
    embedder = MentionEmbedder.from_settings(settings)
    assert embedder.head is not None and embedder.dim == 20
    text = CORPUS[0]
    spans = [(text.index("Eiffel Tower"), text.index("Eiffel Tower") + 12), (text.index("Paris"), text.index("Paris") + 5)]
    got = embedder.embed([text], [spans])[0]
    raw = embedder.raw_layers([text], [spans], [LAYER])[0][LAYER]
    np.testing.assert_allclose(got, torch_projection(mlp, raw), atol=1e-3)
    assert embedder.embed_type("city").shape == (20,)
