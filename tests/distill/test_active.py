"""The active-learning loop (active.py): it runs end to end, selects the disputed structures,
resumes after a kill with nothing lost or labelled twice, starts from given labelled data
(--data, copied once), and refuses what it cannot do."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlff_distiller import cli
from mlff_distiller.distill import active
from mlff_distiller.distill.active import LoopSettings, run_loop
from mlff_distiller.model.io import load_model


def seeds():
    structures = [molecule("H2O"), molecule("CH4")]
    for atoms, name in zip(structures, ("water", "methane")):
        atoms.info["molecule"] = name
    return structures


def tiny_settings(**changes):
    model = dict(elements=[], n_features=8, n_layers=1, n_radial=4, cutoff=3.0, repulsion=True)
    return LoopSettings(
        **{
            **dict(
                rounds=2,
                committee=2,
                temperatures=[300.0],
                md_steps=20,
                md_interval=10,
                select=2,
                initial_per_seed=4,
                teacher="emt",
                model=model,
                epochs=1,
            ),
            **changes,
        }
    )


class InterruptedEMT(EMT):
    """EMT that is killed (KeyboardInterrupt) at its ``kill_at``-th calculation."""

    def __init__(self, kill_at):
        super().__init__()
        self.calls, self.kill_at = 0, kill_at

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.kill_at:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def frames(path):
    return [(a.info["label_id"], a.get_potential_energy()) for a in ase.io.read(path, ":")]


@pytest.fixture(scope="module")
def one_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("al")
    model = run_loop(seeds(), workdir, tiny_settings(), workdir / "out.pt", teacher=EMT(), progress=False)
    return workdir, model


def test_loop_labels_initial_and_selected_structures_and_writes_a_model(one_run):
    workdir, model = one_run
    data = ase.io.read(workdir / "data.extxyz", ":")
    assert len(data) == 8 + 2 * 2  # 4 displaced copies per seed, then 2 selected per round
    assert len({a.info["label_id"] for a in data}) == len(data)
    selected = [a for a in data if a.info.get("sampler") == "student_md"]
    assert len(selected) == 4 and all(a.info["disagreement"] > 0 for a in selected)
    candidates = ase.io.read(workdir / "round0" / "candidates.extxyz", ":")
    assert len(candidates) == 2 * 2  # 2 seeds x 1 temperature x 20 steps / 10
    spread = sorted(a.info["disagreement"] for a in ase.io.read(workdir / "round0" / "selected.extxyz", ":"))
    assert len(spread) == 2
    assert load_model(model).config.repulsion and model.name == "out.pt"


def test_a_killed_loop_resumes_with_nothing_lost_or_labelled_twice(one_run, tmp_path):
    workdir, _ = one_run
    # 8 initial labels, then the kill comes while labelling round 1's selection
    with pytest.raises(KeyboardInterrupt):
        run_loop(seeds(), tmp_path, tiny_settings(), teacher=InterruptedEMT(kill_at=12), progress=False)
    assert not (tmp_path / "round1" / "labelled").exists() and (tmp_path / "round0" / "labelled").exists()
    run_loop(seeds(), tmp_path, tiny_settings(), teacher=EMT(), progress=False)
    assert frames(tmp_path / "data.extxyz") == frames(workdir / "data.extxyz")
    a = load_model(tmp_path / "final" / "member0.pt").state_dict()
    b = load_model(workdir / "final" / "member0.pt").state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_a_resumed_loop_must_keep_its_settings(one_run):
    workdir, _ = one_run
    with pytest.raises(ValueError, match="select 2 then, 5 now"):
        run_loop(seeds(), workdir, tiny_settings(select=5), teacher=EMT(), progress=False)


def test_an_element_the_teacher_lacks_stops_before_any_work(tmp_path):
    teacher = EMT()
    teacher.max_atomic_number = 6
    with pytest.raises(ValueError, match="structures contain O"):
        run_loop(seeds(), tmp_path, tiny_settings(), teacher=teacher, progress=False)
    assert not (tmp_path / "data.extxyz").exists()


def test_command_refuses_a_committee_of_one(tmp_path, capsys):
    assert cli.main(["active-learn", "--smiles", "O", "--workdir", str(tmp_path), "--committee", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- --data
class CountingEMT(EMT):
    """EMT that counts its calculations (what the loop had the teacher label)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, *args, **kwargs):
        self.calls += 1
        super().calculate(*args, **kwargs)


def labelled_file(path, n_per_seed=6, teacher=None):
    """EMT-labelled displaced copies of the seeds, and the first one again at the end (a repeat
    that must be imported once)."""
    rng = np.random.default_rng(7)
    structures = []
    for seed in seeds():
        for _ in range(n_per_seed):
            atoms = seed.copy()
            atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            if teacher:
                atoms.info["teacher"] = teacher
            structures.append(atoms)
    repeat = structures[0].copy()
    repeat.calc = SinglePointCalculator(repeat, **structures[0].calc.results)
    ase.io.write(path, structures + [repeat])
    return structures


def data_settings(path, **changes):
    return tiny_settings(
        **{
            **dict(rounds=1, initial_per_seed=0, data=[str(path)], batch_size=4, learning_rate=2e-3, max_minutes=10.0),
            **changes,
        }
    )


def test_loop_starts_from_given_data_copied_once_and_labels_only_its_selection(tmp_path):
    labelled_file(tmp_path / "given.extxyz")
    given = ase.io.read(tmp_path / "given.extxyz", ":")[:12]
    teacher = CountingEMT()
    workdir = tmp_path / "al"
    model = run_loop(seeds(), workdir, data_settings(tmp_path / "given.extxyz"), teacher=teacher, progress=False)
    data = ase.io.read(workdir / "data.extxyz", ":")
    assert len(data) == 12 + 2  # the 12 distinct given structures (the repeat once), then 2 selected
    assert [a.get_potential_energy() for a in data[:12]] == [a.get_potential_energy() for a in given]
    np.testing.assert_array_equal(data[5].get_forces(), given[5].get_forces())
    assert all(a.info["source"] == "given.extxyz" for a in data[:12])
    assert [a.info.get("sampler") for a in data[12:]] == ["student_md", "student_md"]
    assert len({a.info["label_id"] for a in data}) == 14
    assert teacher.calls == 2  # --initial 0: nothing but the selection was labelled
    assert (workdir / "data.imported").exists() and (workdir / "initial.labelled").exists()
    training = load_model(model).metadata["training"]
    assert training["n_train"] + training["n_validation"] == 14
    assert {k: training["config"][k] for k in ("batch_size", "learning_rate", "max_minutes", "device")} == {
        "batch_size": 4,
        "learning_rate": 2e-3,
        "max_minutes": 10.0,
        "device": "cpu",
    }
    settings = json.loads((workdir / "settings.json").read_text())
    assert settings["data"] == [str((tmp_path / "given.extxyz").resolve())] and settings["initial_per_seed"] == 0

    # run again: everything is done, nothing is copied or labelled twice
    run_loop(seeds(), workdir, data_settings(tmp_path / "given.extxyz"), teacher=teacher, progress=False)
    assert frames(workdir / "data.extxyz") == [(a.info["label_id"], a.get_potential_energy()) for a in data]
    assert teacher.calls == 2


def test_a_copy_of_the_data_cut_short_resumes_without_duplicates(tmp_path):
    """Killed while copying (half a frame written, no marker yet): the next run copies the rest,
    each structure once, and ends as an uninterrupted run does."""
    labelled_file(tmp_path / "given.extxyz")
    settings = dict(initial_per_seed=2, rounds=1)
    straight = tmp_path / "straight"
    run_loop(seeds(), straight, data_settings(tmp_path / "given.extxyz", **settings), teacher=EMT(), progress=False)

    workdir = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):  # the copy is done; the kill comes at the first label
        run_loop(
            seeds(),
            workdir,
            data_settings(tmp_path / "given.extxyz", **settings),
            teacher=InterruptedEMT(kill_at=1),
            progress=False,
        )
    copied = (workdir / "data.extxyz").read_bytes()
    assert len(ase.io.read(workdir / "data.extxyz", ":")) == 12
    (workdir / "data.imported").unlink()  # as if killed in the middle of the copy
    (workdir / "data.extxyz").write_bytes(copied[: len(copied) // 2 + 7])
    run_loop(seeds(), workdir, data_settings(tmp_path / "given.extxyz", **settings), teacher=EMT(), progress=False)
    assert frames(workdir / "data.extxyz") == frames(straight / "data.extxyz")
    assert len(frames(straight / "data.extxyz")) == 12 + 2 * 2 + 2  # given, 2 displaced per seed, selection


def test_given_data_settings_are_kept_and_checked(tmp_path, one_run):
    labelled_file(tmp_path / "given.extxyz")
    labelled_file(tmp_path / "gfn2.extxyz", teacher="gfn2-xtb")
    with pytest.raises(ValueError, match="--initial 0 without --data leaves nothing"):
        run_loop(seeds(), tmp_path / "a", tiny_settings(initial_per_seed=0), teacher=EMT(), progress=False)
    with pytest.raises(ValueError, match="structure 0 of .*gfn2.extxyz was labelled by the teacher 'gfn2-xtb'"):
        run_loop(seeds(), tmp_path / "b", data_settings(tmp_path / "gfn2.extxyz"), teacher=EMT(), progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    workdir, _ = one_run
    with pytest.raises(ValueError, match=r"batch_size 8 then, 4 now, data \[\] then, \['.*given.extxyz'\] now"):
        run_loop(
            seeds(),
            workdir,
            tiny_settings(data=[str(tmp_path / "given.extxyz")], batch_size=4),
            teacher=EMT(),
            progress=False,
        )
    with (
        pytest.raises(ValueError, match="device 'cpu' then, 'cuda' now")
        if torch.cuda.is_available()
        else pytest.raises(ValueError, match="--device cuda: torch sees no CUDA device")
    ):
        run_loop(seeds(), workdir, tiny_settings(device="cuda"), teacher=EMT(), progress=False)


def test_settings_of_a_run_from_before_the_new_options_still_resume(one_run, tmp_path):
    """A settings.json without data, device, batch_size, learning_rate, max_minutes and init_model (written
    before they existed) is the run with their defaults."""
    workdir, _ = one_run
    path = workdir / "settings.json"
    written = path.read_text()
    old = {
        k: v
        for k, v in json.loads(written).items()
        if k not in ("data", "device", "batch_size", "learning_rate", "max_minutes", "init_model")
    }
    try:
        path.write_text(json.dumps(old))
        assert run_loop(seeds(), workdir, tiny_settings(), teacher=EMT(), progress=False).exists()
        with pytest.raises(ValueError, match="learning_rate 0.003 then, 0.001 now"):
            run_loop(seeds(), workdir, tiny_settings(learning_rate=1e-3), teacher=EMT(), progress=False)
    finally:
        path.write_text(written)


def test_command_passes_data_device_and_training_options(tmp_path, monkeypatch):
    seen = {}

    def fake_loop(seed_structures, workdir, settings, output=None, **_):
        seen.update(settings=settings, seeds=seed_structures)
        return tmp_path / "m.pt"

    monkeypatch.setattr(active, "run_loop", fake_loop)
    assert (
        cli.main(
            [
                "active-learn",
                "--smiles",
                "O",
                "--workdir",
                str(tmp_path / "al"),
                "--data",
                "a.extxyz",
                "b.extxyz",
                "--initial",
                "0",
                "--device",
                "cpu",
                "--batch-size",
                "16",
                "--learning-rate",
                "1e-3",
                "--max-minutes",
                "30",
                "--init-model",
                "start.pt",
            ]
        )
        == 0
    )
    settings = seen["settings"]
    assert (settings.data, settings.initial_per_seed, settings.device) == (["a.extxyz", "b.extxyz"], 0, "cpu")
    assert (settings.batch_size, settings.learning_rate, settings.max_minutes) == (16, 1e-3, 30.0)
    assert settings.init_model == "start.pt"
    assert cli.main(["active-learn", "--smiles", "O", "--workdir", str(tmp_path / "al")]) == 0
    settings = seen["settings"]
    assert (
        settings.data,
        settings.initial_per_seed,
        settings.device,
        settings.batch_size,
        settings.learning_rate,
        settings.max_minutes,
    ) == ([], 20, "cpu", 8, 3e-3, None)


# ------------------------------------------------------------------ committees: at once, fine-tuned
def weights(path):
    return load_model(path).state_dict()


def test_members_trained_at_once_equal_members_trained_in_turn(tmp_path):
    """The GPU's way (each member in its own process, all at once), run here on the CPU, gives
    the members that training them one after the other gives."""
    labelled_file(tmp_path / "given.extxyz")
    settings = data_settings(tmp_path / "given.extxyz", model={**tiny_settings().model, "elements": ["C", "H", "O"]})
    active.train_committee(tmp_path / "given.extxyz", tmp_path / "in_turn", settings, progress=False, at_once=1)
    active.train_committee(tmp_path / "given.extxyz", tmp_path / "at_once", settings, progress=False, at_once=2)
    for k in range(settings.committee):
        a, b = weights(tmp_path / "in_turn" / f"member{k}.pt"), weights(tmp_path / "at_once" / f"member{k}.pt")
        assert all(torch.allclose(a[name], b[name], rtol=1e-6, atol=1e-9) for name in a)
    assert (tmp_path / "at_once" / active.COMMITTEE_MARKER).exists()
    first, second = (weights(tmp_path / "at_once" / f"member{k}.pt") for k in range(2))
    assert any(not torch.equal(first[name], second[name]) for name in first)  # two seeds, two members


def test_a_committee_killed_between_members_trains_only_the_missing_ones(tmp_path):
    labelled_file(tmp_path / "given.extxyz")
    settings = data_settings(tmp_path / "given.extxyz", model={**tiny_settings().model, "elements": ["C", "H", "O"]})
    folder = tmp_path / "round0"
    active.train_committee(tmp_path / "given.extxyz", folder, settings, progress=False)
    kept = (folder / "member0.pt").stat().st_mtime_ns
    (folder / "member1.pt").unlink()
    (folder / active.COMMITTEE_MARKER).unlink()
    active.train_committee(tmp_path / "given.extxyz", folder, settings, progress=False, at_once=2)
    assert (folder / "member0.pt").stat().st_mtime_ns == kept and (folder / "member1.pt").exists()


def test_members_start_from_the_initial_model(tmp_path):
    """--init-model: with a learning rate far too small to move a weight the members are that
    model, whatever size --features asked for."""
    labelled_file(tmp_path / "given.extxyz")
    start = data_settings(tmp_path / "given.extxyz", model={**tiny_settings().model, "elements": ["C", "H", "O"]})
    active.train_committee(tmp_path / "given.extxyz", tmp_path / "start", start, progress=False)
    initial = tmp_path / "start" / "member1.pt"
    workdir = tmp_path / "al"
    settings = data_settings(
        tmp_path / "given.extxyz",
        init_model=str(initial),
        learning_rate=1e-30,
        model={**tiny_settings().model, "n_features": 16},
    )
    run_loop(seeds(), workdir, settings, teacher=EMT(), progress=False)
    assert json.loads((workdir / "settings.json").read_text())["model"]["n_features"] == 8
    for k in range(settings.committee):
        member = weights(workdir / "final" / f"member{k}.pt")
        assert all(torch.allclose(member[name], value, rtol=0, atol=1e-20) for name, value in weights(initial).items())


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal where torch sees no CUDA")
def test_command_refuses_cuda_without_cuda_before_any_work(tmp_path, capsys):
    workdir = tmp_path / "al"
    assert cli.main(["active-learn", "--smiles", "O", "--workdir", str(workdir), "--device", "cuda"]) == 2
    assert "--device cuda: torch sees no CUDA device" in capsys.readouterr().err
    assert not workdir.exists()
