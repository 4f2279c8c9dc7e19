import pytest

from monosemantic.cli import main


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "toy" in capsys.readouterr().out


def test_help_keeps_shape_brackets(capsys):
    # rich markup would swallow "[samples, d]" as a style tag: the CLI's help is plain text
    with pytest.raises(SystemExit) as e:
        main(["unfold", "--help"])
    assert e.value.code == 0
    assert "X: [samples, d]" in " ".join(capsys.readouterr().out.split())
