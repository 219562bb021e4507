"""Meta-training on a task family: train instances, validation selection, resume, acting anywhere."""

from __future__ import annotations

import json

import pytest
from stable_baselines3.common.callbacks import BaseCallback

from lrgym.agents import make_agent, run_episode
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import load_agent_spec, load_task_spec
from lrgym.train import HELD_OUT_SEED_START

from .test_family import FAST
from .test_train import StopAfter
from .tiny_training import tiny_agent, train_tiny


class RecordInstances(BaseCallback):
    """The instance of every training episode, from the env's info."""

    def __init__(self) -> None:
        super().__init__()
        self.instances: list[int] = []

    def _on_step(self) -> bool:
        self.instances += [info["instance"] for info in self.locals["infos"]]
        return True


@pytest.fixture
def tiny_family():
    return load_family("mnist1d-family", **FAST)


@pytest.mark.slow
def test_training_draws_train_instances_and_selects_on_validation_instances(tmp_path, tiny_family):
    record = RecordInstances()
    agent = tiny_agent(eval_every_episodes=10, eval_episodes=3)
    result = train_tiny(tmp_path / "run", tiny_family, timesteps=40, agent=agent, extra_callbacks=[record])
    assert result.episodes == 20  # 2 decisions per episode
    assert set(record.instances) <= set(tiny_family.indices("train")) and len(set(record.instances)) > 5

    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["family"]["name"] == "mnist1d-family" and card["family"]["overrides"] == FAST
    validation = tiny_family.indices("validation")
    assert card["seeds"]["held_out"] == [
        {"instance": f"mnist1d-family#{validation[k]}", "seed": HELD_OUT_SEED_START + k} for k in range(3)
    ]
    assert "validation instances" in card["selection"]["rule"]
    assert len(card["run"]["held_out_history"]) >= 2


@pytest.mark.slow
def test_a_family_controller_acts_on_test_instances_and_on_tasks_with_its_spaces(tmp_path, tiny_family):
    train_tiny(tmp_path / "run", tiny_family, timesteps=40)
    test_instance = tiny_family.instance(tiny_family.indices("test")[0])
    agent = make_agent(f"ppo:{tmp_path / 'run'}", test_instance)
    assert len(run_episode(agent, test_instance, seed=0).trajectory) == 2
    task = load_task_spec("mnist1d-mlp", steps=20, interval=10, val_size=50)
    assert len(run_episode(make_agent(f"ppo:{tmp_path / 'run'}", task), task, seed=0).trajectory) == 2
    # The controller brings its own action mode (and state) to a task of another
    discrete = task.replace(action="discrete")
    assert run_episode(make_agent(f"ppo:{tmp_path / 'run'}", discrete), discrete, seed=0).task.action == "scale"


@pytest.mark.slow
def test_resume_continues_a_family_run_and_refuses_other_overrides(tmp_path, tiny_family):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="interrupted"):
        train_tiny(out, tiny_family, timesteps=80, extra_callbacks=[StopAfter(50)])
    result = train_tiny(out, tiny_family, timesteps=80, resume=True)
    assert result.timesteps == 80
    with pytest.raises(ValueError, match="family"):
        train_tiny(out, tiny_family.with_overrides(reward="log_val_loss"), timesteps=120, resume=True)


def test_cli_train_reads_families_and_refuses_unknown_overrides(tmp_path, capsys):
    from lrgym.cli import main

    # A whole CLI run takes a full PPO rollout (240 decisions): the README shows one; here
    # the command's family path is checked up to the spec.
    code = main(["train", "mnist1d-family", "--out", str(tmp_path / "cli"), "--set", "batch=3"])
    assert code == 2 and "unknown override(s) ['batch']" in capsys.readouterr().err


@pytest.mark.slow
def test_a_family_controller_transfers_against_the_family_tuned_step_decay(tmp_path, tiny_family, monkeypatch):
    import lrgym.agents.step_grid_family as step_grid_family
    from lrgym.evaluation.transfer import plan_transfer
    from lrgym.runners.options import RunOptions

    train_tiny(tmp_path / "run", tiny_family, timesteps=20)
    # Every configuration scored without training (the real grid is 48 x 12 episodes): the
    # lowest initial rate wins, so the plan must carry the family-tuned choice.
    monkeypatch.setattr(step_grid_family, "score_configuration",
                        lambda task, configuration, seed, env_options: configuration["initial_lr"])
    target = load_task_spec("mnist1d-lenet", steps=20, interval=10, val_size=50)
    plan = plan_transfer(tmp_path / "run", target, options=RunOptions(cache_dir=tmp_path / "cache", progress=False))
    lowest = min(load_agent_spec("step-grid-family").params["initial_lrs"])
    assert plan.entries[0].options["config"]["initial_lr"] == lowest
    assert plan.entries[0].options["config"]["tuned_on"]["name"] == "mnist1d-family"
    assert plan.source_name == "mnist1d-family" and "the family `mnist1d-family`" in plan.notes[0]


# ---------------------------------------------------------------------------- family populations
@pytest.mark.slow
def test_family_populations_in_two_processes_train_and_select_on_validation_populations(tmp_path, recipe_family):
    family = recipe_family
    record = RecordInstances()
    agent = tiny_agent("ppo-monte-carlo", eval_every_episodes=8, eval_episodes=2, eval_seeds=2)
    agent.params["algorithm"]["batch_size"] = 16
    result = train_tiny(tmp_path / "run", family, timesteps=32, agent=agent, n_envs=2, population=2,
                        rollout=16, extra_callbacks=[record])
    assert result.timesteps == 32 and result.episodes == 8  # 2 processes x 2 members x 2 rounds of 4 decisions
    # Each process's members share one instance per round; the processes draw their own.
    steps = [record.instances[first:first + 4] for first in range(0, len(record.instances), 4)]  # 4 sub-envs
    rounds = [steps[step][worker * 2: worker * 2 + 2] for step in (0, 4) for worker in (0, 1)]
    assert all(len(set(members)) == 1 for members in rounds) and len({r[0] for r in rounds}) == 4
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["population"] == 2 and card["n_envs"] == 2 and card["held_out_every_episodes"] == 8
    validation = family.indices("validation")
    assert card["seeds"]["held_out"] == [
        {"instance": f"mnist1d-family#{validation[k]}", "seed": HELD_OUT_SEED_START + k + 2 * j}
        for k in range(2) for j in range(2)
    ]
    assert result.evaluation_s > 0 and len(card["run"]["held_out_history"]) >= 2


@pytest.mark.parametrize(("flags", "message"), [
    (["--population", "10000000"], "at most --population"),
    (["--population", "2", "--set", "optimizer=prodigy"], "runs on single envs only"),
    (["--population", "2", "--backend", "ray"], "not supported yet"),
    (["--population", "2", "--agent", "aslr"], "needs a training recipe of kind"),
])
def test_cli_refuses_a_population_that_cannot_run_in_one_line_and_writes_nothing(tmp_path, capsys, flags, message):
    from lrgym.cli import main

    out = tmp_path / "never"
    code = main(["train", "mnist1d-family", "--out", str(out), "--set", "dataset_kwargs={}", *flags])
    error = capsys.readouterr().err
    assert code == 2 and message in error and error.count("\n") == 1 and not out.exists()


def test_held_out_runs_of_a_family_take_several_seeds_per_validation_instance(tiny_family):
    from lrgym.train import held_out_runs

    runs = held_out_runs(tiny_family, 2, seeds=3)
    assert [(task.name.split("#")[1], seed) for task, seed in runs] == [
        ("100000", 5000), ("100000", 5002), ("100000", 5004), ("100001", 5001), ("100001", 5003), ("100001", 5005),
    ]
    with pytest.raises(ValueError, match="eval_seeds must be between 1 and"):
        held_out_runs(tiny_family, 200, seeds=26)
