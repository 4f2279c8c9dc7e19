from monosemantic.cli import main


def test_help_exits_zero(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "toy" in capsys.readouterr().out


def test_help_keeps_shape_brackets(capsys):
    # rich markup would swallow "[samples, d]" as a style tag: the CLI's help is plain text
    try:
        main(["unfold", "--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "X: [samples, d]" in " ".join(capsys.readouterr().out.split())
