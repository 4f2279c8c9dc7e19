from monosemantic.cli import main


def test_help_exits_zero(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    assert "toy" in capsys.readouterr().out
