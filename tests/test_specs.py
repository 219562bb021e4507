"""Task specs: each field changes behaviour; overrides and errors are clear."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from lrgym.tasks.specs import load_agent_spec, load_task_spec, task_names

from .conftest import TINY


def episode(**overrides):
    env = gymnasium.make("lrgym/mnist1d-mlp-v0", **{**TINY, **overrides}).unwrapped
    env.reset(seed=0)
    infos, done = [], False
    while not done:
        _, _, done, _, info = env.step(np.zeros(1, np.float32))
        infos.append(info)
    return env, infos


def test_paper_presets_have_the_source_paper_settings():
    for name in ("fashion-mnist-lenet", "fashion-mnist-resnet18", "cifar10-lenet", "cifar10-resnet18"):
        spec = load_task_spec(name)
        assert (spec.batch_size, spec.steps, spec.interval) == (1000, 1000, 10)
        assert spec.initial_lrs == (1e-2, 1e-3, 1e-4) and spec.optimizer == "adam"


def test_quick_presets_exist():
    assert {"mnist1d-mlp", "mnist1d-lenet", "fashion-mnist-quick"} <= set(task_names())


def test_steps_and_interval_set_the_number_of_decisions():
    _, infos = episode(steps=60, interval=20)
    assert [info["step"] for info in infos] == [20, 40, 60]


def test_batch_size_changes_the_batches():
    env, _ = episode(batch_size=16)
    assert env.trainee.sample_batch()[0].shape[0] == 16


def test_validation_size_sets_the_subset():
    env, _ = episode(val_size=123)
    assert env.trainee.val_labels.shape == (123,)


def test_optimizer_changes_training():
    adam = episode(optimizer="adam", initial_lrs=[0.01])[1][-1]["val_loss"]
    sgd = episode(optimizer="sgd", initial_lrs=[0.01])[1][-1]["val_loss"]
    assert adam != sgd


def test_override_through_gymnasium_make():
    env = gymnasium.make("lrgym/mnist1d-mlp-v0", initial_lrs=[10.0], lr_max=10.0)
    assert env.reset(seed=0)[1]["initial_lr"] == 10.0


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: .*mnist1d-mlp"):
        load_task_spec("no-such-task")
    with pytest.raises(ValueError, match="valid agents:"):
        load_agent_spec("no-such-agent")
    with pytest.raises(ValueError, match="valid optimizers: adam, adamw, momentum"):
        episode(optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown task field"):
        load_task_spec("mnist1d-mlp", stepz=3)


def test_invalid_values_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="action must be one of scale, discrete, lr"):
        load_task_spec("mnist1d-mlp", action="big")
    with pytest.raises(ValueError, match="lr_min <= lr_max"):
        load_task_spec("mnist1d-mlp", lr_min=1.0, lr_max=0.1)


# ---------------------------------------------------------------------------- broken spec files
BROKEN = {
    "syntax-error": ('dataset = "mnist1d"\nmodel = [\n', "not valid TOML"),
    "kind-nonsense": ('kind = "nonsense"\ndataset = "mnist1d"\nmodel = "mlp"\n', "kind must be 'family'"),
    "steps-zero": ('dataset = "mnist1d"\nmodel = "mlp"\nsteps = 0\n', "steps must be an integer >= 1, got 0"),
    "family-train-5": ('kind = "family"\ndataset = "mnist1d"\nmodel = "mlp"\n[instances]\ntrain = 5\n'
                       'validation = [5, 6]\ntest = [7, 8]\n', "instances.train must be"),
    "not-text": ("\udcff", "not UTF-8 text"),
}


@pytest.fixture
def home_with_broken_specs(tmp_path, monkeypatch):
    """A copy of envs/ and agents/ with one broken file of each kind beside the good ones."""
    import shutil

    from lrgym.tasks.specs import project_root

    for folder in ("envs", "agents"):
        shutil.copytree(project_root() / folder, tmp_path / folder)
    for name, (text, _) in BROKEN.items():
        (tmp_path / "envs" / f"{name}.toml").write_bytes(text.encode("utf-8", "surrogateescape"))
    (tmp_path / "agents" / "agent-syntax-error.toml").write_text("kind = \n")
    monkeypatch.setenv("LRGYM_HOME", str(tmp_path))
    yield tmp_path
    for name in BROKEN:  # the ids registered here are this test's only
        gymnasium.registry.pop(f"lrgym/{name}-v0", None)


def test_a_broken_spec_registers_as_its_error_and_the_others_as_usual(home_with_broken_specs):
    from lrgym import register_envs

    ids = register_envs()
    assert {f"lrgym/{name}-v0" for name in BROKEN} | {"lrgym/mnist1d-mlp-v0", "lrgym/mnist1d-family-v0"} <= set(ids)
    for name, (_, message) in BROKEN.items():
        with pytest.raises(ValueError, match=message):
            gymnasium.make(f"lrgym/{name}-v0")
    assert gymnasium.make("lrgym/mnist1d-mlp-v0", **TINY).reset(seed=0)[0].shape == (8,)


def test_list_shows_every_good_spec_and_each_broken_one_with_its_error(home_with_broken_specs, capsys):
    from lrgym.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lrgym/mnist1d-mlp-v0" in out and "lrgym/mnist1d-family-v0" in out and "aslr" in out
    broken = out.split("broken specs")[1].splitlines()[1:]
    assert len(broken) == len(BROKEN) + 1
    for name, (_, message) in [*BROKEN.items(), ("agent agent-syntax-error", ("", "not valid TOML"))]:
        (line,) = [line for line in broken if line.startswith(f"  {name}: ")]
        assert message in line


@pytest.mark.parametrize("name", BROKEN)
def test_asking_for_a_broken_spec_gives_its_own_error_in_one_line(name, home_with_broken_specs, capsys):
    from lrgym.cli import main

    assert main(["episode", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and BROKEN[name][1] in err


@pytest.mark.slow
def test_importing_lrgym_survives_broken_specs(home_with_broken_specs):
    import subprocess
    import sys

    code = "import gymnasium, lrgym; gymnasium.make('lrgym/mnist1d-mlp-v0'); print('ok')"
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert finished.stdout.strip() == "ok", finished.stderr
