"""The active-learning loop (active.py): it runs end to end, selects the disputed structures,
resumes after a kill with nothing lost or labelled twice, and refuses what it cannot do."""
import ase.io
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT

from mlff_distiller import cli
from mlff_distiller.distill.active import LoopSettings, run_loop
from mlff_distiller.model.io import load_model


def seeds():
    structures = [molecule("H2O"), molecule("CH4")]
    for atoms, name in zip(structures, ("water", "methane")):
        atoms.info["molecule"] = name
    return structures


def tiny_settings(**changes):
    model = dict(elements=[], n_features=8, n_layers=1, n_radial=4, cutoff=3.0, repulsion=True)
    return LoopSettings(**{**dict(rounds=2, committee=2, temperatures=[300.0], md_steps=20, md_interval=10,
                                  select=2, initial_per_seed=4, teacher="emt", model=model, epochs=1),
                           **changes})


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
